//! Lambda Function URL entry point: the same `Router` the local runner serves, under lambda_http.

use flexbridge::runtime::Invocation;
use lambda_http::RequestExt;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    flexbridge::telemetry::init();
    let app = warehouse_api::app(&flexbridge::Env::from_process()).await?;
    // Hand the invocation's deadline to the guard, which ties idempotency claims to it.
    let service = tower::ServiceBuilder::new()
        .map_request(|mut req: lambda_http::Request| {
            if let Some(ctx) = req.lambda_context_ref() {
                let invocation = Invocation::from(ctx);
                req.extensions_mut().insert(invocation);
            }
            req
        })
        .service(app);
    lambda_http::run(service).await
}
