#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    flexbridge::telemetry::init();
    let f = inventory_pusher::InventoryPusher::from_env(&flexbridge::Env::from_process()).await?;
    flexbridge::runtime::run_lambda(f).await
}
