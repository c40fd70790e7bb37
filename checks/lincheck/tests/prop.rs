//! Property tests: histories generated from random sequential executions with random overlap
//! must be linearizable; the same histories with a planted violation must not be; and on small
//! random histories the checker must agree with a brute-force search over all orders.

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use proptest::prelude::*;
    use sixfold_lincheck::history::{Action, History, Operation, Value};
    use sixfold_lincheck::{check, CheckOptions, Spec, Verdict};

    /// One step of a sequential execution, before outputs are known.
    #[derive(Clone, Debug)]
    enum Gen {
        Read,
        Write,
        Cas(bool),
        Append,
    }

    /// A generated operation: its kind, key, how far its interval stretches around its
    /// linearization point, whether its outcome gets lost, and its client.
    type Planned = (Gen, u8, u64, u64, bool, u64);

    fn planned(kv: bool) -> impl Strategy<Value = Planned> {
        let gen = if kv {
            prop_oneof![Just(Gen::Read), Just(Gen::Write), Just(Gen::Append)].boxed()
        } else {
            prop_oneof![
                Just(Gen::Read),
                Just(Gen::Write),
                any::<bool>().prop_map(Gen::Cas)
            ]
            .boxed()
        };
        (
            gen,
            0..3u8,
            0..40u64,
            0..40u64,
            prop::bool::weighted(0.1),
            0..6u64,
        )
    }

    /// Runs the planned operations sequentially (op k takes effect at time 10k) against a real register or
    /// map, recording what each observed; written values are unique.
    fn execute(plan: &[Planned], kv: bool) -> History {
        let mut state: std::collections::HashMap<Option<String>, Option<Value>> =
            std::collections::HashMap::new();
        let mut ops = Vec::new();
        for (k, (gen, key, before, after, lost, client)) in plan.iter().enumerate() {
            let key = kv.then(|| key.to_string());
            let current = state.get(&key).cloned().flatten();
            let fresh = if kv {
                Value::Str(format!("<{k}>"))
            } else {
                Value::Int(k as i64 + 1)
            };
            let (action, next) = match gen {
                Gen::Read => {
                    let seen = if kv {
                        Some(current.clone().unwrap_or(Value::Str(String::new())))
                    } else {
                        current.clone()
                    };
                    (Action::Read { value: seen }, current.clone())
                }
                Gen::Write => (
                    Action::Write {
                        value: fresh.clone(),
                    },
                    Some(fresh),
                ),
                Gen::Append => {
                    let (Value::Str(old), Value::Str(new)) = (
                        current.clone().unwrap_or(Value::Str(String::new())),
                        fresh.clone(),
                    ) else {
                        unreachable!("kv values are strings")
                    };
                    (
                        Action::Append { value: fresh },
                        Some(Value::Str(old + &new)),
                    )
                }
                Gen::Cas(hit) => {
                    let from = match (&current, hit) {
                        (Some(v), true) => v.clone(),
                        _ => Value::Int(-1),
                    };
                    let ok = current.as_ref() == Some(&from);
                    let next = if ok {
                        Some(fresh.clone())
                    } else {
                        current.clone()
                    };
                    let action = Action::Cas {
                        from,
                        to: fresh,
                        succeeded: Some(ok),
                    };
                    (action, next)
                }
            };
            state.insert(key.clone(), next);
            let point = 10 * k as u64 + 50;
            let lost = *lost && !matches!(action, Action::Read { .. });
            let action = match action {
                Action::Cas { from, to, .. } if lost => Action::Cas {
                    from,
                    to,
                    succeeded: None,
                },
                a => a,
            };
            ops.push(Operation {
                client: *client,
                call: point - before,
                ret: (!lost).then_some(point + after),
                key,
                action,
                line: k + 1,
            });
        }
        History { ops }
    }

    fn verdict(history: &History, spec: Spec) -> Verdict {
        let options = CheckOptions {
            spec,
            time_limit: None,
        };
        check(history, &options).verdict
    }

    fn spec(kv: bool) -> Spec {
        if kv {
            Spec::Kv
        } else {
            Spec::CasRegister
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn executions_with_overlap_are_linearizable(
            kv in any::<bool>(),
            plan in prop::collection::vec(planned(false), 1..80),
            kv_plan in prop::collection::vec(planned(true), 1..80),
        ) {
            let plan = if kv { kv_plan } else { plan };
            let history = execute(&plan, kv);
            prop_assert_eq!(verdict(&history, spec(kv)), Verdict::Linearizable);
        }

        #[test]
        fn reading_a_value_before_it_is_written_is_caught(
            kv in any::<bool>(),
            plan in prop::collection::vec(planned(false), 1..80),
            kv_plan in prop::collection::vec(planned(true), 1..80),
            pick in any::<prop::sample::Index>(),
        ) {
            let plan = if kv { kv_plan } else { plan };
            let mut history = execute(&plan, kv);
            // Plant a read, completed before some write's invocation, that sees that write's
            // unique value (for kv: an append's unique suffix on its own, never a whole value
            // since appends only grow values, so any key's reads are also impossible).
            let writes: Vec<&Operation> = history
                .ops
                .iter()
                .filter(|o| matches!(o.action, Action::Write { .. } | Action::Append { .. }))
                .collect();
            prop_assume!(!writes.is_empty());
            let w = pick.get(&writes);
            let (Action::Write { value } | Action::Append { value }) = &w.action else {
                unreachable!("filtered to writes")
            };
            let value = match (&w.action, value) {
                (Action::Append { .. }, Value::Str(s)) => Value::Str(format!("{s}{s}")),
                (_, v) => v.clone(),
            };
            let read = Operation {
                client: 99,
                call: 0,
                ret: Some(w.call.saturating_sub(1).min(9)),
                key: w.key.clone(),
                action: Action::Read { value: Some(value) },
                line: 0,
            };
            history.ops.push(read);
            prop_assert_eq!(verdict(&history, spec(kv)), Verdict::NotLinearizable);
        }

        #[test]
        fn a_read_of_a_never_written_value_is_caught(
            kv in any::<bool>(),
            plan in prop::collection::vec(planned(false), 1..80),
            kv_plan in prop::collection::vec(planned(true), 1..80),
            pick in any::<prop::sample::Index>(),
        ) {
            let plan = if kv { kv_plan } else { plan };
            let mut history = execute(&plan, kv);
            let reads: Vec<usize> = (0..history.ops.len())
                .filter(|&i| matches!(history.ops[i].action, Action::Read { .. }))
                .collect();
            prop_assume!(!reads.is_empty());
            let i = *pick.get(&reads);
            let never = if kv { Value::Str("never".into()) } else { Value::Int(-7) };
            history.ops[i].action = Action::Read { value: Some(never) };
            prop_assert_eq!(verdict(&history, spec(kv)), Verdict::NotLinearizable);
        }

        #[test]
        fn agrees_with_brute_force_on_small_random_histories(
            raw in prop::collection::vec(
                (0..4u8, 0..3i64, 0..3i64, 0..30u64, 0..12u64, 0..4u8),
                0..7,
            ),
        ) {
            // Arbitrary (mostly non-linearizable) small histories over values 0..3.
            let ops: Vec<Operation> = raw
                .iter()
                .enumerate()
                .map(|(k, &(kind, a, b, call, len, outcome))| {
                    let ret = (outcome != 0).then_some(call + len);
                    let action = match kind {
                        0 => Action::Read { value: (a > 0).then_some(Value::Int(a)) },
                        1 => Action::Write { value: Value::Int(a) },
                        _ => Action::Cas {
                            from: Value::Int(a),
                            to: Value::Int(b),
                            succeeded: ret.map(|_| outcome != 1),
                        },
                    };
                    Operation { client: k as u64, call, ret, key: None, action, line: k + 1 }
                })
                .filter(|o| o.ret.is_some() || !matches!(o.action, Action::Read { .. }))
                .collect();
            let history = History { ops };
            let expected = if brute_force(&history.ops) {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            };
            prop_assert_eq!(verdict(&history, Spec::CasRegister), expected);
        }
    }

    /// Tries every order of every subset that contains all known-outcome operations.
    fn brute_force(ops: &[Operation]) -> bool {
        fn go(ops: &[Operation], used: &mut Vec<bool>, state: Option<Value>) -> bool {
            let done = ops
                .iter()
                .zip(used.iter())
                .all(|(o, &u)| u || o.ret.is_none());
            if done {
                return true;
            }
            for i in 0..ops.len() {
                if used[i] {
                    continue;
                }
                // i may go next iff no unplaced operation returned before i was called.
                let minimal = (0..ops.len())
                    .all(|j| used[j] || j == i || ops[j].ret.is_none_or(|r| r >= ops[i].call));
                if !minimal {
                    continue;
                }
                let next = match &ops[i].action {
                    Action::Read { value } => (*value == state).then(|| state.clone()),
                    Action::Write { value } => Some(Some(value.clone())),
                    Action::Cas {
                        from,
                        to,
                        succeeded,
                    } => {
                        let hit = state.as_ref() == Some(from);
                        match succeeded {
                            Some(true) => hit.then(|| Some(to.clone())),
                            Some(false) => (!hit).then(|| state.clone()),
                            None => Some(if hit { Some(to.clone()) } else { state.clone() }),
                        }
                    }
                    Action::Append { .. } => None,
                };
                if let Some(next) = next {
                    used[i] = true;
                    if go(ops, used, next) {
                        return true;
                    }
                    used[i] = false;
                }
            }
            false
        }
        go(ops, &mut vec![false; ops.len()], None)
    }
}
