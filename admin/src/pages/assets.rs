//! The static assets, compiled into the binary: nothing is fetched from elsewhere at run time.
//!
//! Mirrors `nsqadmin/http.go` `staticAssetHandler` (`GET /static/:asset`, 404 `NOT_FOUND` for
//! an unknown name).

use crate::http::Reply;

/// The stylesheet.
pub(crate) const STYLE_CSS: &str = include_str!("../../assets/style.css");
/// The script.
pub(crate) const APP_JS: &str = include_str!("../../assets/app.js");

/// `GET /static/:asset`.
pub(crate) fn serve(asset: &str) -> Reply {
    match asset {
        "style.css" => Reply::typed("text/css; charset=utf-8", STYLE_CSS),
        "app.js" => Reply::typed("application/javascript; charset=utf-8", APP_JS),
        _ => Reply::error(404, "NOT_FOUND"),
    }
}
