//! `taskreg conflicts`: versions offered with different contents, and what was decided.

use super::Globals;
use serde_json::Value;
use std::process::ExitCode;

pub async fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let conflicts = globals.reader().await?.conflicts().await?;
    if globals.json {
        let rows: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                let mut row = serde_json::to_value(c).unwrap_or_default();
                row["detail"] = serde_json::from_str(&c.detail).unwrap_or(Value::Null);
                row
            })
            .collect();
        super::print_json(&rows)?;
    } else if conflicts.is_empty() {
        println!("no conflicts");
    } else {
        for c in &conflicts {
            let detail: Value = serde_json::from_str(&c.detail).unwrap_or(Value::Null);
            println!(
                "{}@{} ({}): {}",
                c.name,
                c.version,
                c.strategy,
                detail["decision"].as_str().unwrap_or("?")
            );
            for offer in detail["offers"].as_array().into_iter().flatten() {
                println!(
                    "  {}:{}  {}",
                    offer["source"].as_str().unwrap_or("?"),
                    offer["locator"].as_str().unwrap_or("?"),
                    offer["digest"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
