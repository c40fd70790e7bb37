//! Simulation benchmark: how long seeded walks at each model's deep bounds take to find every
//! mutant (two threads, from seed 1), and how fast the protocol's walks go.
//!
//! `cargo bench -p sixfold-checks --bench simulate` (option: `-- --seconds S`, the protocol's
//! walk time per model, default 10).
//!
//! The figures in the README's "Deep runs" table come from this. A mutant is "found" when the
//! walk of the lowest seed that breaks its property has been walked and its steps shrunk.

use sixfold_checks::runner::{group, run, ModelCheck, ModelKind, Strategy};
use sixfold_model::protocol::config::Mutant;
use std::time::{Duration, Instant};

fn seconds() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0)
}

fn opts(model: ModelKind, mutant: Option<Mutant>) -> ModelCheck {
    let mut o = ModelCheck::new(model, mutant);
    o.bounds = model.walk_bounds(mutant);
    o.strategy = Strategy::Simulation;
    o.symmetry = false;
    o.threads = 2;
    o.plan.states = None;
    o.out_dir = std::env::temp_dir().join(format!("sixfold-bench-sim-{}", std::process::id()));
    o
}

fn main() {
    println!("| model | mutant | property | seed | walks | steps (shrunk from) | time |");
    println!("|---|---|---|---|---|---|---|");
    for model in ModelKind::ALL {
        for (mutant, property) in model.mutants() {
            let mut o = opts(model, Some(mutant));
            o.plan.time = Some(Duration::from_secs(60));
            let start = Instant::now();
            let r = run(&o).expect("valid options");
            let took = start.elapsed().as_secs_f64();
            let v = r.verdicts.iter().find(|v| v.name == property).unwrap();
            let w = r.walks.as_ref().unwrap();
            match w.found.get(property) {
                Some(&(seed, unshrunk)) if !v.holds => println!(
                    "| {model} | `{mutant}` | {property} | {seed} | {} | {} ({unshrunk}) | {took:.2} s |",
                    group(w.totals.walks as usize),
                    v.steps
                ),
                _ => println!("| {model} | `{mutant}` | {property} | NOT FOUND in 60 s | | | |"),
            }
        }
    }
    println!();
    println!("| model | walks | states | depth | seconds | walks/s | states/s |");
    println!("|---|---|---|---|---|---|---|");
    for model in ModelKind::ALL {
        let mut o = opts(model, None);
        o.plan.time = Some(Duration::from_secs_f64(seconds()));
        let r = run(&o).expect("valid options");
        assert!(r.passed(), "{model}: the protocol's walks pass");
        let w = r.walks.as_ref().unwrap();
        let secs = r.elapsed.as_secs_f64();
        println!(
            "| {model} | {} | {} | {} | {secs:.1} | {} | {} |",
            group(w.totals.walks as usize),
            group(w.totals.states as usize),
            w.totals.depth,
            group((w.totals.walks as f64 / secs) as usize),
            group((w.totals.states as f64 / secs) as usize),
        );
    }
}
