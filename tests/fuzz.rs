//! Property tests (proptest, a fixed number of cases each, so CI runs them
//! for a bounded time): the expression parser and the checkpoint loader
//! never panic on arbitrary input, report errors as errors, and what parses
//! prints back to the same expression.

mod common;

use proptest::prelude::*;
use webgrad::symbolic::ExprGraph;
use webgrad::{Error, Tensor, io};

/// Strings built from the expression language's tokens, with stray
/// characters, so that most are malformed and some are not.
fn expression_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("x1".to_string()),
        Just("x2".to_string()),
        Just("y".to_string()),
        Just("+".to_string()),
        Just("-".to_string()),
        Just("*".to_string()),
        Just("/".to_string()),
        Just("^".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("sin(".to_string()),
        Just("log(".to_string()),
        Just("exp(".to_string()),
        Just("sqrt(".to_string()),
        Just(" ".to_string()),
        Just(",".to_string()),
        Just("1e999".to_string()),
        Just("0".to_string()),
        "[0-9]{1,3}(\\.[0-9]{1,2})?".prop_map(|s| s),
        "[a-z#@!]".prop_map(|s| s),
    ];
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_and_round_trips(src in expression_text()) {
        let mut g = ExprGraph::new();
        match g.parse(&src) {
            Ok(e) => {
                let printed = g.print(e);
                let again = g.parse(&printed);
                prop_assert!(again.is_ok(), "{src:?} printed as {printed:?}, which does not parse: {again:?}");
                prop_assert_eq!(again.unwrap(), e, "{:?} printed as {:?}", src, printed);
                // Evaluation never panics; unknown variables are an error.
                let _ = g.eval(e, &[("x1", 0.5), ("x2", -2.0), ("y", 3.0)]);
            }
            Err(Error::Parse { position, message }) => {
                prop_assert!(position <= src.chars().count(), "position {} past the end of {:?}", position, src);
                prop_assert!(!message.is_empty());
            }
            Err(other) => prop_assert!(false, "not a parse error: {other:?}"),
        }
    }
}

#[test]
fn the_checkpoint_loader_never_panics_on_damaged_files() {
    // 500 damaged copies of a valid checkpoint: bytes flipped, inserted or
    // cut. Each load is Ok (a harmless edit) or a Checkpoint error, and a
    // failed load leaves the variable untouched.
    let dev = gpu!();
    let w = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3])
        .to_variable()
        .unwrap();
    let good = io::to_bytes_blocking(&[("w", &w)]).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 500,
        ..ProptestConfig::default()
    });
    let edits = prop::collection::vec((0..good.len(), any::<u8>(), 0u8..3), 1..6);
    runner
        .run(&edits, |edits| {
            let mut bytes = good.clone();
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match kind {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
            }
            let target = Tensor::from_vec(&dev, vec![7.0, 8.0, 9.0], [3])
                .to_variable()
                .unwrap();
            match io::from_bytes(&bytes, &[("w", &target)]) {
                Ok(()) => {}
                Err(Error::Checkpoint(_)) => {
                    prop_assert_eq!(target.to_vec_blocking().unwrap(), vec![7.0, 8.0, 9.0]);
                }
                Err(other) => prop_assert!(false, "not a checkpoint error: {other:?}"),
            }
            Ok(())
        })
        .unwrap();
}
