use order_poller::OrderPoller;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    flexbridge::telemetry::init();
    let f = OrderPoller::from_env(&flexbridge::Env::from_process()).await?;
    flexbridge::runtime::run_lambda(f).await
}
