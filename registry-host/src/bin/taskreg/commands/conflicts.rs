//! `taskreg conflicts`: versions offered with different contents, and what was decided.

use super::Globals;
use std::process::ExitCode;

pub async fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let conflicts = globals.reader().await?.conflicts().await?;
    if globals.json {
        // Through `Value`: keys sorted, as the stored detail is.
        super::print_json(&serde_json::to_value(&conflicts)?)?;
    } else if conflicts.is_empty() {
        println!("no conflicts");
    } else {
        for c in &conflicts {
            println!("{}@{} ({}): {}", c.name, c.version, c.strategy, c.detail.decision);
            for offer in &c.detail.offers {
                let signed = offer
                    .signed_by
                    .as_ref()
                    .map(|key| format!("  signed by {key}"))
                    .unwrap_or_default();
                println!("  {}:{}  {}{signed}", offer.source, offer.locator, offer.digest);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
