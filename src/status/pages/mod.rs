//! The page table: every status page, declared once, in nav order.
//!
//! Each row names the page's file (`pages/<module>.rs`, which has its model and its
//! `build`), its route, its JSON twin, its title (also its nav label), its place in the nav,
//! its template (under `templates/`) and its refresh in seconds. Routing, the nav, the template
//! environment and the `/api/…` twin all come from this table, so adding a page is its file,
//! its template and one row here.

use super::page::Nav::{Listed, Under};
use super::page::{PageSpec, Template};

macro_rules! page_table {
    ($($module:ident: $path:literal, $api:literal, $title:literal, $nav:expr, $template:literal, $refresh:literal;)*) => {
        $(mod $module;)*

        /// Every page, in nav order; the first is the home page.
        pub(crate) static PAGES: &[&PageSpec] = &[$(&PageSpec {
            path: $path,
            api: $api,
            title: $title,
            nav: $nav,
            template: Template {
                name: $template,
                source: include_str!(concat!("../templates/", $template)),
            },
            refresh: $refresh,
            build: $module::build,
        }),*];
    };
}

page_table! {
//  file        route            JSON twin            title         nav               template          refresh
    dashboard:  "/",             "/api/status",       "首页",       Listed,           "dashboard.html", 10;
    manual:     "/manual",       "/api/manual",       "待人工发货", Listed,           "manual.html",    15;
    orders:     "/orders",       "/api/orders",       "订单",       Listed,           "orders.html",    30;
    order:      "/orders/{id}",  "/api/orders/{id}",  "订单详情",   Under("/orders"), "order.html",     30;
    products:   "/products",     "/api/products",     "商品",       Listed,           "products.html",  30;
    stats:      "/stats",        "/api/stats",        "统计",       Listed,           "stats.html",     60;
    chats:      "/chats",        "/api/chats",        "会话",       Listed,           "chats.html",     15;
    aftersale:  "/aftersale",    "/api/aftersale",    "售后",       Listed,           "aftersale.html", 30;
    problems:   "/problems",     "/api/problems",     "异常",       Listed,           "problems.html",  15;
    logs:       "/logs",         "/api/logs",         "日志",       Listed,           "logs.html",      15;
}

/// The home page (the table's first): the page a failed page links back to.
pub(crate) fn home() -> &'static PageSpec {
    PAGES[0]
}
