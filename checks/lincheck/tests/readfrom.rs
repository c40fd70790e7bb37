//! The read-from procedure for unique written values against the search: the same verdict on
//! thousands of small generated histories (linearizable and not), and evidence that holds up
//! when replayed against the model.

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use proptest::prelude::*;
    use sixfold_lincheck::generate::{history, Params};
    use sixfold_lincheck::history::{Action, History, Operation, Value};
    use sixfold_lincheck::readfrom::applies;
    use sixfold_lincheck::{
        check_using, CheckOptions, Method, PartitionOutcome, Report, Spec, Verdict,
    };

    fn report(history: &History, spec: Spec, method: Method) -> Report {
        let options = CheckOptions {
            spec,
            time_limit: None,
        };
        check_using(history, &options, method)
    }

    /// A register value; kv's absent key and "" are the same state.
    fn state(v: Option<&Value>) -> Option<Value> {
        match v {
            Some(Value::Str(s)) if s.is_empty() => None,
            v => v.cloned(),
        }
    }

    /// The state after `op` in `before`, or why the model refuses it.
    fn apply(op: &Operation, before: Option<Value>) -> Result<Option<Value>, String> {
        let refuse = || Err(format!("{op} refused in state {before:?}"));
        match &op.action {
            Action::Read { value } if state(value.as_ref()) == before => Ok(before),
            Action::Write { value } => Ok(state(Some(value))),
            Action::Cas {
                from,
                to,
                succeeded,
            } => {
                let hit = before.as_ref() == Some(from);
                match succeeded {
                    Some(true) if hit => Ok(Some(to.clone())),
                    Some(false) if !hit => Ok(before),
                    None if hit => Ok(Some(to.clone())),
                    None => Ok(before),
                    _ => refuse(),
                }
            }
            _ => refuse(),
        }
    }

    /// Checks that `order` is a valid partial linearization of the partition `part`: the model
    /// accepts it, it respects real time, and no operation outside it returned before one in
    /// it was called. With `complete`, it must also hold every operation with a known outcome.
    fn valid_prefix(
        h: &History,
        part: &[usize],
        order: &[usize],
        complete: bool,
    ) -> Result<(), String> {
        let mut s = None;
        let mut inside = vec![false; h.ops.len()];
        for (k, &i) in order.iter().enumerate() {
            if !part.contains(&i) || inside[i] {
                return Err(format!("op {i} is foreign or repeated"));
            }
            inside[i] = true;
            s = apply(&h.ops[i], s)?;
            for &j in &order[..k] {
                if h.ops[i].ret.is_some_and(|r| r < h.ops[j].call) {
                    return Err(format!(
                        "{} is placed after {}, which it precedes",
                        h.ops[i], h.ops[j]
                    ));
                }
            }
        }
        for &j in part.iter().filter(|&&j| !inside[j]) {
            let Some(r) = h.ops[j].ret else { continue };
            if complete {
                return Err(format!("{} is left out", h.ops[j]));
            }
            if let Some(&i) = order.iter().find(|&&i| r < h.ops[i].call) {
                return Err(format!(
                    "{} is left out but precedes {}",
                    h.ops[j], h.ops[i]
                ));
            }
        }
        Ok(())
    }

    /// Every partition's evidence replays: linearizations are complete, violation prefixes are
    /// valid and the blocked operation is outside them.
    fn evidence_holds(h: &History, r: &Report) -> Result<(), String> {
        for p in &r.partitions {
            let part = &p.partition.ops;
            match &p.outcome {
                PartitionOutcome::Linearizable(order) => valid_prefix(h, part, order, true)?,
                PartitionOutcome::Violation(v) => {
                    valid_prefix(h, part, &v.prefix, false)?;
                    if !part.contains(&v.blocked) || v.prefix.contains(&v.blocked) {
                        return Err(format!("blocked op {} is not a pending op", v.blocked));
                    }
                    if h.ops[v.blocked].ret.is_none() {
                        return Err("the blocked op has no return".into());
                    }
                }
                PartitionOutcome::TimedOut | PartitionOutcome::Cancelled => {}
            }
        }
        Ok(())
    }

    fn spec_of(k: u8) -> Spec {
        match k % 3 {
            0 => Spec::Register,
            1 => Spec::CasRegister,
            _ => Spec::Kv,
        }
    }

    /// Small changes that keep every written value unique but may break linearizability: a
    /// read returns another value, a cas expects another value or reports another outcome, an
    /// interval moves.
    fn mutate(h: &mut History, (what, a, b): (u8, u64, u64)) {
        if h.ops.is_empty() {
            return;
        }
        let n = h.ops.len();
        let written: Vec<Value> = h
            .ops
            .iter()
            .filter_map(|o| match &o.action {
                Action::Write { value } => Some(value.clone()),
                Action::Cas { to, .. } => Some(to.clone()),
                _ => None,
            })
            .collect();
        let pick = |k: u64| -> Option<Value> {
            match (k % (written.len() as u64 + 2)) as usize {
                0 => None,
                1 => Some(Value::Int(-99)),
                i => Some(written[i - 2].clone()),
            }
        };
        let op = &mut h.ops[a as usize % n];
        match (what % 4, &mut op.action) {
            (0, Action::Read { value }) => *value = pick(b),
            (1, Action::Cas { from, .. }) => {
                if let Some(v) = pick(b) {
                    *from = v;
                }
            }
            (2, Action::Cas { succeeded, .. }) if op.ret.is_some() => {
                *succeeded = Some(b % 2 == 0);
            }
            _ => {
                let shift = b % 60;
                op.call = op.call.saturating_sub(shift);
                if let Some(r) = &mut op.ret {
                    *r = (*r + b % 7).max(op.call);
                }
            }
        }
        if op.key.is_some() {
            // kv has strings only: keep mutated values valid for the model.
            if let Action::Read {
                value: Some(Value::Int(i)),
            } = &op.action
            {
                let s = Value::Str(format!("never{i}"));
                op.action = Action::Read { value: Some(s) };
            }
        }
    }

    fn small_history(
        (spec, ops, clients, keys, unknown, stale, seed): (u8, usize, u64, u64, usize, usize, u64),
        mutations: &[(u8, u64, u64)],
    ) -> (Spec, History) {
        let spec = spec_of(spec);
        let mut params = Params::new(spec, ops, clients);
        params.keys = keys;
        params.unknown = unknown;
        params.stale_reads = stale;
        params.seed = seed;
        let mut h = history(&params);
        for &m in mutations {
            if spec != Spec::CasRegister && m.0 % 4 == 1 {
                continue;
            }
            mutate(&mut h, m);
        }
        (spec, h)
    }

    fn params() -> impl Strategy<Value = (u8, usize, u64, u64, usize, usize, u64)> {
        (
            0..3u8,
            1..40usize,
            1..7u64,
            1..3u64,
            0..6usize,
            0..3usize,
            any::<u64>(),
        )
    }

    /// Tiny histories with unique written values and otherwise arbitrary reads, expected
    /// values, outcomes and intervals: mostly not linearizable, and full of corner cases.
    fn tiny() -> impl Strategy<Value = History> {
        prop::collection::vec((0..3u8, 0..9u8, 0..30u64, 0..12u64, 0..3u8), 0..8).prop_map(|raw| {
            let value = |k: u8| match k {
                0 => None,
                1 | 2 => Some(Value::Int(-(k as i64))),
                k => Some(Value::Int(100 + k as i64 - 3)),
            };
            let ops = raw
                .iter()
                .enumerate()
                .filter_map(|(k, &(kind, v, call, len, outcome))| {
                    let ret = (outcome != 2).then_some(call + len);
                    let to = Value::Int(100 + k as i64);
                    let action = match kind {
                        0 if ret.is_some() => Action::Read { value: value(v) },
                        0 => return None,
                        1 => Action::Write { value: to },
                        _ => Action::Cas {
                            from: value(v).unwrap_or(Value::Int(-1)),
                            to,
                            succeeded: ret.map(|_| outcome == 0),
                        },
                    };
                    Some(Operation {
                        client: k as u64,
                        call,
                        ret,
                        key: None,
                        action,
                        line: k + 1,
                    })
                })
                .collect();
            History { ops }
        })
    }

    /// Overlapping writes and failed cas with few reads: the shape where the order of blocks is
    /// a real choice, so the depth-first part of the procedure (and its memo) is exercised.
    fn choices() -> impl Strategy<Value = History> {
        let op = (0..10u8, 0..10u8, 0..20u64, 0..25u64, 0..6u8);
        prop::collection::vec(op, 2..15).prop_map(|raw| {
            let ops = raw
                .iter()
                .enumerate()
                .map(|(k, &(kind, v, call, len, outcome))| {
                    // Failed cas come late and short, so they wait on blocks already begun.
                    let (call, len) = if kind >= 6 {
                        (call + 10, len / 5)
                    } else {
                        (call, len)
                    };
                    let ret = (outcome != 0).then_some(call + len);
                    let to = Value::Int(100 + k as i64);
                    let from = Value::Int(100 + i64::from(v));
                    let action = match kind {
                        0 if ret.is_some() => Action::Read { value: Some(from) },
                        0..=4 => Action::Write { value: to },
                        5 => Action::Cas {
                            from,
                            to,
                            succeeded: ret.map(|_| true),
                        },
                        _ => Action::Cas {
                            from,
                            to,
                            succeeded: ret.map(|_| false),
                        },
                    };
                    Operation {
                        client: k as u64,
                        call,
                        ret,
                        key: None,
                        action,
                        line: k + 1,
                    }
                })
                .collect();
            History { ops }
        })
    }

    /// Overlapping writes followed by failed cas and reads called after the writes returned:
    /// only some orders of the writes work (the last one must be neither failed on nor
    /// contradicted), so the procedure backtracks over orders and meets states again.
    fn orders() -> impl Strategy<Value = History> {
        let writes = prop::collection::vec((0..6u64, 15..25u64, 0..4u8), 2..8);
        let late = prop::collection::vec((0..8usize, 10..30u64, 0..4u64, 0..3u8), 0..7);
        (writes, late).prop_map(|(writes, late)| {
            let n = writes.len();
            let value = |k: usize| Value::Int(100 + k as i64);
            let mut ops: Vec<Operation> = writes
                .iter()
                .enumerate()
                .map(|(k, &(call, ret, outcome))| {
                    let ret = (outcome != 0).then_some(ret);
                    op(k as u64, call, ret, Action::Write { value: value(k) })
                })
                .collect();
            for (j, &(of, call, len, kind)) in late.iter().enumerate() {
                let from = value(of % n);
                let action = match kind {
                    0 => Action::Read { value: Some(from) },
                    _ => Action::Cas {
                        from,
                        to: value(n + j),
                        succeeded: Some(false),
                    },
                };
                ops.push(op((n + j) as u64, call, Some(call + len), action));
            }
            History { ops }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2500))]

        #[test]
        fn agrees_with_the_search_where_only_some_orders_work(h in orders()) {
            let fast = report(&h, Spec::CasRegister, Method::Auto);
            let search = report(&h, Spec::CasRegister, Method::Search);
            prop_assert_eq!(fast.verdict, search.verdict, "{:#?}", h.ops);
            if let Err(e) = evidence_holds(&h, &fast) {
                prop_assert!(false, "{e}: {:#?}", h.ops);
            }
        }

        #[test]
        fn agrees_with_the_search_where_the_block_order_is_a_choice(h in choices()) {
            let fast = report(&h, Spec::CasRegister, Method::Auto);
            let search = report(&h, Spec::CasRegister, Method::Search);
            prop_assert_eq!(fast.verdict, search.verdict, "{:#?}", h.ops);
            if let Err(e) = evidence_holds(&h, &fast) {
                prop_assert!(false, "{e}: {:#?}", h.ops);
            }
        }

        #[test]
        fn agrees_with_the_search_on_small_generated_histories(
            p in params(),
            mutations in prop::collection::vec((0..4u8, any::<u64>(), any::<u64>()), 0..4),
        ) {
            let (spec, h) = small_history(p, &mutations);
            prop_assert!(applies(spec, &h));
            let fast = report(&h, spec, Method::Auto);
            let search = report(&h, spec, Method::Search);
            prop_assert_eq!(fast.verdict, search.verdict, "{:#?}", h.ops);
            prop_assert!(evidence_holds(&h, &fast).map_err(TestCaseError::fail).is_ok());
        }

        #[test]
        fn agrees_with_the_search_on_tiny_arbitrary_histories(h in tiny()) {
            prop_assert!(applies(Spec::CasRegister, &h));
            let fast = report(&h, Spec::CasRegister, Method::Auto);
            let search = report(&h, Spec::CasRegister, Method::Search);
            prop_assert_eq!(fast.verdict, search.verdict, "{:#?}", h.ops);
            if let Err(e) = evidence_holds(&h, &fast) {
                prop_assert!(false, "{e}: {:#?}", h.ops);
            }
        }
    }

    /// The generated histories above are not all alike: a fair share of each verdict, so the
    /// comparison is not vacuous.
    #[test]
    fn the_generated_small_histories_have_both_verdicts() {
        let mut linearizable = 0;
        for seed in 0..400u64 {
            let p = (
                (seed % 3) as u8,
                5 + seed as usize % 30,
                1 + seed % 6,
                1 + seed % 2,
                seed as usize % 4,
                seed as usize % 3,
                seed,
            );
            let m = [((seed % 4) as u8, seed * 7, seed * 13)];
            let (spec, h) = small_history(p, &m[..(seed % 2) as usize]);
            if report(&h, spec, Method::Auto).verdict == Verdict::Linearizable {
                linearizable += 1;
            }
        }
        assert!(
            (100..=300).contains(&linearizable),
            "{linearizable} of 400 linearizable"
        );
    }

    /// The hard class of issue 16: 1,000 operations over 16 clients with unknown outcomes are
    /// decided, and one stale read is caught, with evidence that replays.
    #[test]
    fn long_histories_with_many_clients_are_decided() {
        for seed in 1..=4 {
            for stale in [0, 1] {
                let mut p = Params::new(Spec::CasRegister, 1000, 16);
                p.unknown = 10;
                p.stale_reads = stale;
                p.seed = seed;
                let h = history(&p);
                assert!(applies(Spec::CasRegister, &h));
                let r = report(&h, Spec::CasRegister, Method::Auto);
                let want = if stale == 0 {
                    Verdict::Linearizable
                } else {
                    Verdict::NotLinearizable
                };
                assert_eq!(r.verdict, want, "seed {seed}, {stale} stale read(s)");
                evidence_holds(&h, &r).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                if let Some((_, v)) = r.violation() {
                    // The blame falls on the stale read: the one op that differs without it.
                    p.stale_reads = 0;
                    let clean = history(&p);
                    assert_ne!(h.ops[v.blocked], clean.ops[v.blocked], "seed {seed}");
                }
            }
        }
    }

    /// The HTML page of a violation the read-from procedure found still marks where it fails
    /// and names the operation that cannot be placed.
    #[test]
    fn the_html_page_shows_where_a_stale_read_fails() {
        let mut p = Params::new(Spec::CasRegister, 300, 8);
        p.stale_reads = 1;
        let h = history(&p);
        let r = report(&h, Spec::CasRegister, Method::Auto);
        let (_, v) = r.violation().expect("a stale read is a violation");
        // The same seed without the stale read differs in that one read: the one blamed.
        p.stale_reads = 0;
        let clean = history(&p);
        let stale: Vec<usize> = (0..h.ops.len())
            .filter(|&i| h.ops[i] != clean.ops[i])
            .collect();
        assert_eq!(stale, vec![v.blocked]);
        let page =
            sixfold_lincheck::html::render(std::path::Path::new("gen"), Spec::CasRegister, &h, &r);
        assert!(page.contains("fails here"));
        let escaped = |s: String| s.replace('>', "&gt;").replace('"', "&quot;");
        let blocked = escaped(h.ops[v.blocked].to_string());
        assert!(
            page.contains(&format!("<b>{blocked}</b> returns")),
            "the page names {blocked}"
        );
    }

    fn op(client: u64, call: u64, ret: Option<u64>, action: Action) -> Operation {
        Operation {
            client,
            call,
            ret,
            key: None,
            action,
            line: client as usize + 1,
        }
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    #[test]
    fn reads_of_the_initial_value_must_come_before_every_write() {
        let early_nil = History {
            ops: vec![
                op(0, 0, Some(10), Action::Write { value: int(1) }),
                op(1, 5, Some(20), Action::Read { value: None }),
                op(
                    2,
                    12,
                    Some(14),
                    Action::Read {
                        value: Some(int(1)),
                    },
                ),
            ],
        };
        let r = report(&early_nil, Spec::Register, Method::Auto);
        assert_eq!(r.verdict, Verdict::Linearizable);
        let mut late_nil = early_nil.clone();
        late_nil.ops[1].call = 15;
        let r = report(&late_nil, Spec::Register, Method::Auto);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
        let (_, v) = r.violation().expect("evidence");
        assert_eq!(
            v.blocked, 1,
            "the late read of nil is what cannot be placed"
        );
    }

    #[test]
    fn a_failed_cas_may_need_an_unknown_write_to_have_taken_effect() {
        let ops = vec![
            op(0, 0, Some(5), Action::Write { value: int(1) }),
            op(1, 10, None, Action::Write { value: int(2) }),
            op(
                2,
                10,
                Some(20),
                Action::Cas {
                    from: int(1),
                    to: int(3),
                    succeeded: Some(false),
                },
            ),
        ];
        let h = History { ops };
        assert_eq!(
            report(&h, Spec::CasRegister, Method::Auto).verdict,
            Verdict::Linearizable
        );
        let mut without = h.clone();
        without.ops.remove(1);
        assert_eq!(
            report(&without, Spec::CasRegister, Method::Auto).verdict,
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn a_failed_cas_constrains_which_block_follows_the_value_it_expected() {
        // The cas (t 5..5) fails on 103, which was written at t 0..0, so block 103 must end,
        // and the next block begin, by t 5. Write 102 (t 6) cannot be that block: only the
        // order 103, 100, 102 works, though real time alone also allows 100, 103, 102.
        let ops = vec![
            op(0, 0, Some(1), Action::Write { value: int(100) }),
            op(
                1,
                5,
                Some(5),
                Action::Cas {
                    from: int(103),
                    to: int(101),
                    succeeded: Some(false),
                },
            ),
            op(2, 6, Some(6), Action::Write { value: int(102) }),
            op(3, 0, Some(0), Action::Write { value: int(103) }),
        ];
        let h = History { ops };
        let r = report(&h, Spec::CasRegister, Method::Auto);
        assert_eq!(r.verdict, Verdict::Linearizable);
        evidence_holds(&h, &r).expect("the linearization replays");
        let mut late = h.clone();
        late.ops[3].call = 2;
        late.ops[3].ret = Some(2);
        late.ops[0].ret = Some(1);
        // Now 100 (returned at 1) precedes 103 (called at 2): 103 is followed only by 102.
        let r = report(&late, Spec::CasRegister, Method::Auto);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
        assert_eq!(
            r.verdict,
            report(&late, Spec::CasRegister, Method::Search).verdict
        );
    }

    #[test]
    fn a_successful_cas_follows_the_write_it_names_immediately() {
        // cas 1 -> 3 succeeded, but write 2 returned between write 1 and the cas's call.
        let ops = vec![
            op(0, 0, Some(1), Action::Write { value: int(1) }),
            op(1, 2, Some(3), Action::Write { value: int(2) }),
            op(
                2,
                4,
                Some(5),
                Action::Cas {
                    from: int(1),
                    to: int(3),
                    succeeded: Some(true),
                },
            ),
        ];
        let h = History { ops };
        let r = report(&h, Spec::CasRegister, Method::Auto);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
        assert_eq!(
            r.verdict,
            report(&h, Spec::CasRegister, Method::Search).verdict
        );
        evidence_holds(&h, &r).expect("evidence replays");
    }

    #[test]
    fn kv_keys_with_unique_puts_are_decided_per_key() {
        let mut p = Params::new(Spec::Kv, 600, 8);
        p.keys = 5;
        p.unknown = 6;
        let h = history(&p);
        assert!(applies(Spec::Kv, &h));
        let r = report(&h, Spec::Kv, Method::Auto);
        assert_eq!(r.verdict, Verdict::Linearizable);
        assert_eq!(r.partitions.len(), 5);
        p.stale_reads = 1;
        let r = report(&history(&p), Spec::Kv, Method::Auto);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
    }

    #[test]
    fn histories_outside_the_class_still_get_the_search() {
        // Two writes of the same value: not in the class, and still decided correctly.
        let ops = vec![
            op(0, 0, Some(1), Action::Write { value: int(1) }),
            op(1, 2, Some(3), Action::Write { value: int(2) }),
            op(2, 4, Some(5), Action::Write { value: int(1) }),
            op(
                3,
                6,
                Some(7),
                Action::Read {
                    value: Some(int(1)),
                },
            ),
        ];
        let h = History { ops };
        assert!(!applies(Spec::Register, &h));
        assert_eq!(
            report(&h, Spec::Register, Method::Auto).verdict,
            Verdict::Linearizable
        );
    }
}
