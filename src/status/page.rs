//! The page contract: what a status page declares ([`PageSpec`], one row of the table in
//! `pages/mod.rs`) and how every page is answered ([`answer`]).
//!
//! A page is a row (route, JSON twin, title, nav entry, template, refresh) and a file under
//! `pages/` whose `build` turns the cached [`ShopView`] (plus the query or the path's id) into
//! a serializable model. The model is built once per request and answered as JSON (`/api/…`)
//! or rendered with the template, so the API is exactly what the page shows.

use futures_util::future::BoxFuture;
use hyper::{Response, StatusCode};
use minijinja::Environment;
use serde::Serialize;

use crate::config::Config;
use crate::store::views::ShopView;

use super::http::{self, Body};
use super::render::{self, Frame};
use super::{Server, StatusContext};

/// One status page, declared once.
pub(crate) struct PageSpec {
    /// The HTML route; a last segment `{id}` takes one path parameter (`/orders/{id}`).
    pub path: &'static str,
    /// The JSON twin's route, with the same parameter.
    pub api: &'static str,
    /// The `<title>` and, for a listed page, the nav label.
    pub title: &'static str,
    pub nav: Nav,
    pub template: Template,
    /// Seconds between automatic reloads of the HTML page; 0 for none.
    pub refresh: u32,
    pub build: for<'a> fn(&'a Input<'a>) -> BoxFuture<'a, Built>,
}

/// Where a page sits in the header's nav.
pub(crate) enum Nav {
    /// Listed, under its title, in table order.
    Listed,
    /// Not listed; the entry of the page at this path is lit instead (a detail page).
    Under(&'static str),
}

/// A minijinja template compiled into the binary; `.html`, so every value is escaped.
pub(crate) struct Template {
    pub name: &'static str,
    pub source: &'static str,
}

/// What a page builder gets.
pub(crate) struct Input<'a> {
    pub ctx: &'a StatusContext,
    /// The cached view of the store (see `snapshot`).
    pub view: &'a ShopView,
    pub config: &'a Config,
    pub now: u64,
    /// The decoded query string.
    pub query: &'a [(String, String)],
    /// The decoded `{id}` path parameter; empty for a page without one.
    pub id: &'a str,
}

impl Input<'_> {
    /// The first non-empty value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        http::query_get(self.query, key)
    }
}

/// What a builder made.
pub(crate) enum Built {
    Page(Box<dyn Model>),
    /// What the path names does not exist: a Chinese title and message for the page, an
    /// English one for the API.
    Missing {
        title: &'static str,
        message: String,
        error: String,
    },
    /// The store could not be read (logged where it happened).
    Failed,
}

/// A page's model, built once and answered in either form.
pub(crate) trait Model: Send {
    fn json(&self) -> Response<Body>;
    fn html(
        &self,
        env: &Environment<'static>,
        frame: Frame<'_>,
    ) -> Result<String, minijinja::Error>;
}

impl<T: Serialize + Send> Model for T {
    fn json(&self) -> Response<Body> {
        http::json(StatusCode::OK, self)
    }

    fn html(
        &self,
        env: &Environment<'static>,
        frame: Frame<'_>,
    ) -> Result<String, minijinja::Error> {
        render::render(env, frame, self)
    }
}

/// A model that needed nothing but the view, as a builder's answer.
pub(crate) fn ready<'a>(model: impl Model + 'static) -> BoxFuture<'a, Built> {
    Box::pin(std::future::ready(Built::Page(Box::new(model))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Html,
    Json,
}

/// Build `page` for this request and answer in `form`.
pub(crate) async fn answer(
    server: &Server,
    page: &'static PageSpec,
    id: &str,
    query: &[(String, String)],
    form: Form,
) -> Response<Body> {
    let config = server.ctx.config.load_full();
    let now = server.ctx.store.now();
    let built = match server.snapshots.view().await {
        Ok(view) => {
            let input = Input {
                ctx: &server.ctx,
                view: &view,
                config: &config,
                now,
                query,
                id,
            };
            (page.build)(&input).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "Status page cannot read the store.");
            Built::Failed
        }
    };
    match form {
        Form::Json => json(built),
        Form::Html => html(server, page, id, built, now, &config.version),
    }
}

fn json(built: Built) -> Response<Body> {
    match built {
        Built::Page(model) => model.json(),
        Built::Missing { error, .. } => http::json_error(StatusCode::NOT_FOUND, &error),
        Built::Failed => http::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the store; see the log",
        ),
    }
}

/// The page shown instead of a model: not found, or the store failed.
#[derive(Serialize)]
struct Message {
    title: &'static str,
    message: String,
}

const MESSAGE: &str = "message.html";

fn html(
    server: &Server,
    page: &'static PageSpec,
    id: &str,
    built: Built,
    now: u64,
    version: &str,
) -> Response<Body> {
    let home = super::pages::home();
    let frame = |template, page: &'static PageSpec, title, refresh, api| Frame {
        template,
        nav: page.lit(),
        title,
        refresh,
        api,
        now,
        version,
    };
    let api = page.api_for(id);
    let (status, frame, model): (_, _, Box<dyn Model>) = match built {
        Built::Page(model) => (
            StatusCode::OK,
            frame(page.template.name, page, page.title, page.refresh, &api),
            model,
        ),
        Built::Missing { title, message, .. } => (
            StatusCode::NOT_FOUND,
            frame(MESSAGE, page, title, 0, page.list_api()),
            Box::new(Message { title, message }),
        ),
        Built::Failed => (
            StatusCode::INTERNAL_SERVER_ERROR,
            frame(MESSAGE, home, "出错了", 10, home.api),
            Box::new(Message {
                title: "读取数据失败",
                message: "无法读取店铺数据，详情见日志。页面会自动重试。".into(),
            }),
        ),
    };
    match model.html(&server.env, frame) {
        Ok(text) => http::html(status, text),
        Err(e) => {
            tracing::error!(error = %e, template = frame.template, "Status page template failed.");
            http::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "页面渲染失败，详情见日志。\n",
            )
        }
    }
}

impl PageSpec {
    /// The nav entry lit on this page (a path of a listed page).
    pub fn lit(&'static self) -> &'static str {
        match self.nav {
            Nav::Listed => self.path,
            Nav::Under(path) => path,
        }
    }

    /// The JSON twin of this page as asked (`id` filled in, escaped).
    fn api_for(&self, id: &str) -> String {
        match self.api.strip_suffix("{id}") {
            Some(prefix) => format!("{prefix}{}", http::encode(id)),
            None => self.api.to_string(),
        }
    }

    /// Where the JSON twin of a missing item's list is (`/api/orders` for `/api/orders/{id}`).
    fn list_api(&self) -> &'static str {
        self.api.strip_suffix("/{id}").unwrap_or(self.api)
    }
}

// Routes compare pages by path: the table never holds two pages on one path.
impl PartialEq for PageSpec {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for PageSpec {}

impl std::fmt::Debug for PageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}
