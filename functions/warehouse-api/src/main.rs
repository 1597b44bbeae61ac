//! Lambda Function URL entry point: the same `Router` the local runner serves, under lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    flexbridge::telemetry::init();
    let app = warehouse_api::app(&flexbridge::Env::from_process()).await?;
    // Each request carries Lambda's request ID and deadline to the guard and the routes.
    let service = tower::ServiceBuilder::new()
        .map_request(warehouse_api::lambda_invocation)
        .service(app);
    lambda_http::run(service).await
}
