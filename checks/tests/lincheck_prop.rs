//! Property tests: histories generated from random sequential executions with random overlap
//! must be linearizable; the same histories with a planted violation must not be; and on small
//! random histories the checker must agree with a brute-force search over all orders.

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use proptest::prelude::*;
    use sixfold_checks::lincheck::history::{Action, History, Operation, Value};
    use sixfold_checks::lincheck::search::{check, CheckOptions, Verdict};
    use sixfold_checks::lincheck::ModelKind;

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
    type Spec = (Gen, u8, u64, u64, bool, u64);

    fn spec(kv: bool) -> impl Strategy<Value = Spec> {
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

    /// Runs the specs sequentially (op k takes effect at time 10k) against a real register or
    /// map, recording what each observed; written values are unique.
    fn execute(specs: &[Spec], kv: bool) -> History {
        let mut state: std::collections::HashMap<Option<String>, Option<Value>> =
            std::collections::HashMap::new();
        let mut ops = Vec::new();
        for (k, (gen, key, before, after, lost, client)) in specs.iter().enumerate() {
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

    fn verdict(history: &History, model: ModelKind) -> Verdict {
        let options = CheckOptions {
            model,
            time_limit: None,
        };
        check(history, &options).verdict
    }

    fn model(kv: bool) -> ModelKind {
        if kv {
            ModelKind::Kv
        } else {
            ModelKind::CasRegister
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn executions_with_overlap_are_linearizable(
            kv in any::<bool>(),
            specs in prop::collection::vec(spec(false), 1..80),
            kv_specs in prop::collection::vec(spec(true), 1..80),
        ) {
            let specs = if kv { kv_specs } else { specs };
            let history = execute(&specs, kv);
            prop_assert_eq!(verdict(&history, model(kv)), Verdict::Linearizable);
        }

        #[test]
        fn reading_a_value_before_it_is_written_is_caught(
            kv in any::<bool>(),
            specs in prop::collection::vec(spec(false), 1..80),
            kv_specs in prop::collection::vec(spec(true), 1..80),
            pick in any::<prop::sample::Index>(),
        ) {
            let specs = if kv { kv_specs } else { specs };
            let mut history = execute(&specs, kv);
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
            prop_assert_eq!(verdict(&history, model(kv)), Verdict::NotLinearizable);
        }

        #[test]
        fn a_read_of_a_never_written_value_is_caught(
            kv in any::<bool>(),
            specs in prop::collection::vec(spec(false), 1..80),
            kv_specs in prop::collection::vec(spec(true), 1..80),
            pick in any::<prop::sample::Index>(),
        ) {
            let specs = if kv { kv_specs } else { specs };
            let mut history = execute(&specs, kv);
            let reads: Vec<usize> = (0..history.ops.len())
                .filter(|&i| matches!(history.ops[i].action, Action::Read { .. }))
                .collect();
            prop_assume!(!reads.is_empty());
            let i = *pick.get(&reads);
            let never = if kv { Value::Str("never".into()) } else { Value::Int(-7) };
            history.ops[i].action = Action::Read { value: Some(never) };
            prop_assert_eq!(verdict(&history, model(kv)), Verdict::NotLinearizable);
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
            prop_assert_eq!(verdict(&history, ModelKind::CasRegister), expected);
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
