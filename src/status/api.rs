//! Page data: build each page's model once, then answer with its JSON (`/api/…`) or its HTML.
//!
//! Both forms come from the same value, so the JSON API is exactly what the page shows.

use hyper::{Response, StatusCode};
use serde::Serialize;

use super::http::{self, Body};
use super::model::{self, OrdersQuery};
use super::pages::{self, Frame};
use super::{Page, Server};

/// A page's model, or why there is none.
enum Data {
    Dashboard(model::Dashboard),
    Manual(model::ManualPage),
    Orders(model::OrdersPage),
    Order(Box<model::OrderPage>),
    Products(model::ProductsPage),
    Problems(model::ProblemsPage),
    Logs(model::LogsPage),
    NoOrder(String),
    Failed,
}

pub(crate) async fn json(
    server: &Server,
    page: Page,
    query: &[(String, String)],
) -> Response<Body> {
    match build(server, &page, query).await {
        Data::Dashboard(d) => http::json(StatusCode::OK, &d),
        Data::Manual(d) => http::json(StatusCode::OK, &d),
        Data::Orders(d) => http::json(StatusCode::OK, &d),
        Data::Order(d) => http::json(StatusCode::OK, &d),
        Data::Products(d) => http::json(StatusCode::OK, &d),
        Data::Problems(d) => http::json(StatusCode::OK, &d),
        Data::Logs(d) => http::json(StatusCode::OK, &d),
        Data::NoOrder(id) => http::json_error(StatusCode::NOT_FOUND, &format!("no order {id}")),
        Data::Failed => http::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the store; see the log",
        ),
    }
}

pub(crate) async fn html(
    server: &Server,
    page: Page,
    query: &[(String, String)],
) -> Response<Body> {
    let now = server.ctx.store.now();
    let version = server.ctx.config.load().version.clone();
    let frame = |template, nav, title, refresh, api| Frame {
        template,
        nav,
        title,
        refresh,
        api,
        now,
        version: &version,
    };
    let order_api;
    let (status, f, body) = match build(server, &page, query).await {
        Data::Dashboard(d) => ok(
            frame("dashboard.html", "home", "首页", 10, "/api/status"),
            PageView::from(d),
        ),
        Data::Manual(d) => ok(
            frame("manual.html", "manual", "待人工发货", 15, "/api/manual"),
            PageView::from(d),
        ),
        Data::Orders(d) => ok(
            frame("orders.html", "orders", "订单", 30, "/api/orders"),
            PageView::from(d),
        ),
        Data::Order(d) => {
            order_api = format!("/api/orders/{}", http::encode(&d.order.item.order_id));
            ok(
                frame("order.html", "orders", "订单详情", 30, &order_api),
                PageView::from(*d),
            )
        }
        Data::Products(d) => ok(
            frame("products.html", "products", "商品", 30, "/api/products"),
            PageView::from(d),
        ),
        Data::Problems(d) => ok(
            frame("problems.html", "problems", "异常", 15, "/api/problems"),
            PageView::from(d),
        ),
        Data::Logs(d) => ok(
            frame("logs.html", "logs", "日志", 15, "/api/logs"),
            PageView::from(d),
        ),
        Data::NoOrder(id) => (
            StatusCode::NOT_FOUND,
            frame("message.html", "orders", "未找到订单", 0, "/api/orders"),
            PageView::message("未找到订单", format!("没有订单 {id}。")),
        ),
        Data::Failed => (
            StatusCode::INTERNAL_SERVER_ERROR,
            frame("message.html", "home", "出错了", 10, "/api/status"),
            PageView::message(
                "读取数据失败",
                "无法读取店铺数据，详情见日志。页面会自动重试。".into(),
            ),
        ),
    };
    match pages::render(&server.env, f, &body) {
        Ok(text) => http::html(status, text),
        Err(e) => {
            tracing::error!(error = %e, template = f.template, "Status page template failed.");
            http::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "页面渲染失败，详情见日志。\n",
            )
        }
    }
}

fn ok(f: Frame<'_>, page: PageView) -> (StatusCode, Frame<'_>, PageView) {
    (StatusCode::OK, f, page)
}

/// Any page's model, serialized as itself (no intermediate JSON value on the hot path).
// One value per request, moved once: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize)]
#[serde(untagged)]
enum PageView {
    Dashboard(model::Dashboard),
    Manual(model::ManualPage),
    Orders(model::OrdersPage),
    Order(model::OrderPage),
    Products(model::ProductsPage),
    Problems(model::ProblemsPage),
    Logs(model::LogsPage),
    Message {
        title: &'static str,
        message: String,
    },
}

impl PageView {
    fn message(title: &'static str, message: String) -> Self {
        Self::Message { title, message }
    }
}

macro_rules! page_from {
    ($($variant:ident: $ty:ty),*) => {$(
        impl From<$ty> for PageView {
            fn from(d: $ty) -> Self {
                Self::$variant(d)
            }
        }
    )*};
}

page_from!(
    Dashboard: model::Dashboard,
    Manual: model::ManualPage,
    Orders: model::OrdersPage,
    Order: model::OrderPage,
    Products: model::ProductsPage,
    Problems: model::ProblemsPage,
    Logs: model::LogsPage
);

async fn build(server: &Server, page: &Page, query: &[(String, String)]) -> Data {
    let ctx = &server.ctx;
    let view = match server.snapshots.view().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "Status page cannot read the store.");
            return Data::Failed;
        }
    };
    let config = ctx.config.load();
    let now = ctx.store.now();
    match page {
        Page::Dashboard => Data::Dashboard(model::dashboard(&view, &config, &ctx.health, now)),
        Page::Manual => Data::Manual(model::manual(&view, &config, now)),
        Page::Orders => Data::Orders(model::orders(&view, &config, &orders_query(query))),
        Page::Products => Data::Products(model::products(&view, &config)),
        Page::Problems => Data::Problems(model::problems(&view, &config, &ctx.health, now)),
        Page::Logs => Data::Logs(model::logs(&ctx.logs)),
        Page::Order(id) => order(server, &view, id).await,
    }
}

async fn order(server: &Server, view: &crate::store::views::ShopView, id: &str) -> Data {
    let ids = view.outbox_by_order.get(id).cloned().unwrap_or_default();
    let key = id.to_string();
    match server
        .ctx
        .store
        .call(move |s| s.order_view(&key, &ids))
        .await
    {
        Ok(Some(detail)) => {
            let row = view.orders.iter().find(|o| o.order_id == id);
            let config = server.ctx.config.load();
            Data::Order(Box::new(model::order_page(detail, row, &config)))
        }
        Ok(None) => Data::NoOrder(id.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, order_id = id, "Status page cannot read an order.");
            Data::Failed
        }
    }
}

fn orders_query(pairs: &[(String, String)]) -> OrdersQuery {
    let get = |k| http::query_get(pairs, k).map(str::to_string);
    OrdersQuery {
        status: get("status"),
        account: get("account"),
        item: get("item"),
        page: http::query_get(pairs, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1),
    }
}
