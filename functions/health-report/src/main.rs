use health_report::HealthReport;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    flexbridge::telemetry::init();
    let f = HealthReport::from_env(&flexbridge::Env::from_process()).await?;
    flexbridge::runtime::run_lambda(f).await
}
