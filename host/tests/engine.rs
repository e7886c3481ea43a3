//! The continuous-batching engine on the real default model: reproducibility whatever else
//! runs, fairness between clients, admission control and cancellation.

use std::sync::Arc;
use std::time::Duration;

use textnlp_host::engine::{
    Engine, EngineConfig, Event, FinishReason, Priority, Request, SessionError, SessionStep,
    SubmitError, negative_log_likelihood,
};
use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::{Draw, Llama, LogitsFor, ModelError, Scratch, SequenceStep};
use textnlp_host::paths;
use textnlp_kernels::cpu::sampling::{Sampler, SamplingParams};
use tokio::sync::mpsc::UnboundedReceiver;

fn model() -> Arc<Llama> {
    let path = paths::default_model();
    let file = GgufFile::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()));
    Arc::new(Llama::load(file).expect("loads the default model"))
}

fn request(client: &str, prompt: Vec<u32>, max_tokens: usize, seed: u64) -> Request {
    Request {
        client: client.into(),
        prompt,
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 50,
            top_p: 0.95,
            seed,
            ..SamplingParams::default()
        },
        stop_tokens: Vec::new(),
        logit_bias: Vec::new(),
        top_logprobs: None,
        priority: Priority::Interactive,
    }
}

/// Deterministic pseudo-random prompt ids (valid for any vocabulary over 1000 tokens).
fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 1 + (i * 7919 + salt * 104_729) % 999)
        .collect()
}

/// Every token of a finished sequence, and how it finished.
fn collect(mut rx: UnboundedReceiver<Event>) -> (Vec<u32>, FinishReason) {
    let mut ids = Vec::new();
    loop {
        match rx.blocking_recv().expect("the engine ends every sequence") {
            Event::Token { id, .. } => ids.push(id),
            Event::Finished(reason) => return (ids, reason),
            Event::Failed(why) => panic!("sequence failed: {why}"),
        }
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        max_running: 16,
        step_tokens: 64,
        ..EngineConfig::default()
    }
}

#[test]
fn a_seeded_sequence_is_identical_alone_batched_and_chunked_differently() {
    let model = model();
    let target = || request("a", prompt(150, 1), 24, 42);

    let engine = Engine::start(Arc::clone(&model), config());
    let alone = collect(engine.handle().submit(target()).unwrap());

    // The same request amid 9 others of different lengths, joining mid-flight, with a
    // different prefill chunking (step budget 64 vs 512).
    let engine2 = Engine::start(
        Arc::clone(&model),
        EngineConfig {
            step_tokens: 512,
            ..config()
        },
    );
    let h = engine2.handle();
    let others: Vec<_> = (0..4)
        .map(|i| {
            h.submit(request(
                "b",
                prompt(30 + 40 * i, 10 + i as u32),
                40,
                i as u64,
            ))
        })
        .collect();
    let batched = h.submit(target()).unwrap();
    let late: Vec<_> = (0..5)
        .map(|i| {
            h.submit(request(
                "c",
                prompt(5 + i, 20 + i as u32),
                8,
                100 + i as u64,
            ))
        })
        .collect();
    let batched = collect(batched);
    for rx in others.into_iter().chain(late) {
        collect(rx.unwrap());
    }
    assert_eq!(
        alone, batched,
        "seeded output changed with batch composition"
    );
    assert_eq!(alone.0.len(), 24);
    assert_eq!(alone.1, FinishReason::Length);

    // A different seed gives a different continuation.
    let other = collect(
        engine
            .handle()
            .submit(request("a", prompt(150, 1), 24, 43))
            .unwrap(),
    );
    assert_ne!(alone.0, other.0);
    engine.shutdown(Duration::ZERO);
    engine2.shutdown(Duration::ZERO);
}

#[test]
fn a_flooding_client_does_not_starve_another() {
    let engine = Engine::start(
        model(),
        EngineConfig {
            max_running: 1,
            ..config()
        },
    );
    let h = engine.handle();
    let (tx, order) = std::sync::mpsc::channel();
    let spawn = |client: &'static str, i: usize, rx: UnboundedReceiver<Event>| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            collect(rx);
            tx.send((client, i)).unwrap();
        })
    };
    let mut threads = Vec::new();
    for i in 0..8 {
        let rx = h
            .submit(request("flood", prompt(8, i as u32), 6, i))
            .unwrap();
        threads.push(spawn("flood", i as usize, rx));
    }
    let rx = h.submit(request("polite", prompt(8, 99), 6, 99)).unwrap();
    threads.push(spawn("polite", 0, rx));
    for t in threads {
        t.join().unwrap();
    }
    let finished: Vec<_> = order.try_iter().collect();
    let polite_at = finished.iter().position(|&(c, _)| c == "polite").unwrap();
    // FCFS would finish polite last (position 8). With token fairness it starts level with
    // the flood once it arrives: at worst one flood request runs and one wins the tie.
    assert!(
        polite_at <= 2,
        "polite finished at position {polite_at}: {finished:?}"
    );
    engine.shutdown(Duration::ZERO);
}

#[test]
fn admission_control_refuses_clearly_and_cancellation_frees_the_pool() {
    let engine = Engine::start(
        model(),
        EngineConfig {
            max_running: 2,
            kv_tokens: 400,
            max_waiting: 3,
            max_waiting_per_client: 2,
            ..config()
        },
    );
    let h = engine.handle();
    // Larger than the whole pool: refused up front, never queued.
    assert_eq!(
        h.submit(request("a", prompt(300, 1), 200, 1)).unwrap_err(),
        SubmitError::TooLarge {
            needed: 500,
            capacity: 400
        }
    );
    assert!(matches!(
        h.submit(request("a", Vec::new(), 4, 1)),
        Err(SubmitError::EmptyPrompt)
    ));
    assert!(matches!(
        h.submit(request("a", vec![u32::MAX], 4, 1)),
        Err(SubmitError::TokenOutOfRange { .. })
    ));
    // Two long sequences fill the pool (2 × 190 of 400); more wait, bounded per client and
    // globally.
    let long: Vec<_> = (0..2)
        .map(|i| {
            h.submit(request("a", prompt(40, i), 150, i as u64))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let waiting: Vec<_> = (0..2)
        .map(|i| h.submit(request("b", prompt(10, i), 5, 7)).unwrap())
        .collect();
    assert!(matches!(
        h.submit(request("b", prompt(10, 9), 5, 7)),
        Err(SubmitError::ClientQueueFull { .. })
    ));
    let _third = h.submit(request("c", prompt(10, 9), 5, 7)).unwrap();
    match h.submit(request("d", prompt(10, 9), 5, 7)) {
        Err(SubmitError::QueueFull { retry_after, .. }) => {
            assert!(retry_after >= Duration::from_secs(1))
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // Dropping the long sequences' receivers cancels them; the waiting ones then run.
    drop(long);
    for rx in waiting {
        assert_eq!(collect(rx).0.len(), 5);
    }
    let stats = h.stats();
    assert!(stats.cancelled.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    engine.shutdown(Duration::from_secs(5));
}

/// Greedy decoding by hand through a session (append, take the argmax of the logits, append
/// it) gives exactly the tokens of a greedy request, while other work shares the batch.
#[test]
fn a_session_decodes_like_a_request_amid_other_work() {
    let engine = Engine::start(model(), config());
    let handle = engine.handle();
    let greedy = |prompt: Vec<u32>| Request {
        sampling: SamplingParams::default(),
        ..request("req", prompt, 12, 0)
    };
    let (expected, _) = collect(handle.submit(greedy(prompt(40, 3))).unwrap());

    let noise: Vec<_> = (0..4)
        .map(|i| {
            handle
                .submit(request("noise", prompt(30, 10 + i), 20, i as u64))
                .unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut session = handle
        .open_session("plugin", 64, Priority::Interactive)
        .expect("a session fits");
    let mut logits = session.append(&prompt(40, 3), deadline).expect("prefill");
    let mut got = Vec::new();
    for _ in 0..12 {
        let next = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(id, _)| id as u32)
            .unwrap();
        got.push(next);
        logits = session.append(&[next], deadline).expect("decode");
    }
    assert_eq!(got, expected);
    assert_eq!(session.len(), 52);
    for rx in noise {
        collect(rx);
    }
}

#[test]
fn a_session_refuses_what_it_cannot_hold_and_frees_its_memory_when_dropped() {
    let engine = Engine::start(
        model(),
        EngineConfig {
            kv_tokens: 128,
            ..config()
        },
    );
    let handle = engine.handle();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    assert!(matches!(
        handle.open_session("p", 129, Priority::Interactive),
        Err(SubmitError::TooLarge {
            needed: 129,
            capacity: 128
        })
    ));
    let mut session = handle
        .open_session("p", 100, Priority::Interactive)
        .unwrap();
    session.append(&prompt(90, 1), deadline).unwrap();
    let too_many = session.append(&prompt(20, 2), deadline).unwrap_err();
    assert!(
        too_many.to_string().contains("capacity of 100"),
        "{too_many}"
    );
    let bad_id = session.append(&[u32::MAX], deadline).unwrap_err();
    assert!(
        bad_id.to_string().contains("outside the vocabulary"),
        "{bad_id}"
    );
    // The session holds 100 of 128 KV tokens: a 60-token request waits until it is dropped.
    let rx = handle.submit(request("r", prompt(40, 4), 20, 1)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        handle
            .stats()
            .running
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    drop(session);
    let (ids, _) = collect(rx);
    assert_eq!(ids.len(), 20);
}

/// A scored append returns each appended token's log-probability: equal to a direct forward
/// pass over the whole sequence, also when the append is fed over several steps (64 tokens a
/// step here) while other sequences share them.
#[test]
fn a_scored_append_gives_the_log_probabilities_of_a_direct_pass() {
    let model = model();
    let tokens = prompt(150, 7);
    let direct: Vec<f64> = {
        let mut cache = model.new_cache();
        let mut scratch = Scratch::default();
        let mut steps = [SequenceStep {
            cache: &mut cache,
            tokens: &tokens,
            logits: LogitsFor::All,
        }];
        let logits = model.forward(&mut steps, &mut scratch).unwrap();
        let n_vocab = model.config().n_vocab;
        logits
            .chunks_exact(n_vocab)
            .zip(&tokens[1..])
            .map(|(row, &next)| -negative_log_likelihood(row, next))
            .collect()
    };
    let engine = Engine::start(Arc::clone(&model), config());
    let handle = engine.handle();
    let noise = handle
        .submit(request("noise", prompt(100, 9), 30, 1))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut session = handle
        .open_session("plugin", 200, Priority::Interactive)
        .unwrap();
    assert!(matches!(
        session.score(&tokens[..1], deadline),
        Err(SessionError::NoContext)
    ));
    session.append(&tokens[..10], deadline).unwrap();
    // `direct[i]` scores token `i + 1`; an append of tokens `from..` gets `from + 1..` scored,
    // the first one's prediction having come with the previous append's logits.
    let close = |step: &SessionStep, from: usize| {
        for (i, (&ours, &theirs)) in step.logprobs.iter().zip(&direct[from..]).enumerate() {
            assert!(
                (f64::from(ours) - theirs).abs() < 2e-3,
                "token {}: {ours} vs {theirs}",
                from + i + 1
            );
        }
    };
    let step = session.score(&tokens[10..100], deadline).unwrap();
    assert_eq!(step.logprobs.len(), 89);
    close(&step, 10);
    // A plain append in between scores nothing, and the next scored append starts afresh.
    session.append(&tokens[100..110], deadline).unwrap();
    let step = session.score(&tokens[110..], deadline).unwrap();
    assert_eq!(step.logprobs.len(), tokens.len() - 111);
    close(&step, 110);
    assert_eq!(
        step.logits.len(),
        model.config().n_vocab,
        "the last position's logits come back too"
    );
    collect(noise);
}

#[test]
fn forward_sampled_draws_each_sampling_sequences_token_as_the_cpu_sampler_would() {
    let model = model();
    let n_vocab = model.config().n_vocab;
    let (a, b, c) = (prompt(40, 1), prompt(12, 2), prompt(7, 3));
    let seeded = Draw {
        params: SamplingParams {
            temperature: 0.8,
            top_k: 40,
            seed: 9,
            ..SamplingParams::default()
        },
        step: 5,
    };
    let greedy = Draw {
        params: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        step: 0,
    };
    // `a` feeds a chunk and wants nothing back; `b` and `c` sample.
    let run = |sampled: bool| {
        let mut caches: Vec<_> = (0..3).map(|_| model.new_cache()).collect();
        let mut scratch = Scratch::default();
        let [ca, cb, cc] = &mut caches[..] else {
            unreachable!()
        };
        let mut batch = [
            SequenceStep {
                cache: ca,
                tokens: &a,
                logits: LogitsFor::None,
            },
            SequenceStep {
                cache: cb,
                tokens: &b,
                logits: LogitsFor::Last,
            },
            SequenceStep {
                cache: cc,
                tokens: &c,
                logits: LogitsFor::Last,
            },
        ];
        if sampled {
            let tokens = model
                .forward_sampled(&mut batch, &[seeded, greedy], &mut scratch)
                .unwrap();
            (tokens.to_vec(), caches.iter().map(|c| c.len()).collect())
        } else {
            let logits = model.forward(&mut batch, &mut scratch).unwrap().to_vec();
            let mut rows = logits.chunks_exact(n_vocab);
            let mut draw = |d: Draw| {
                Sampler::at_step(d.params, d.step).sample(&mut rows.next().unwrap().to_vec(), &[])
            };
            let tokens = vec![draw(seeded), draw(greedy)];
            (tokens, caches.iter().map(|c| c.len()).collect::<Vec<_>>())
        }
    };
    let (want, lens) = run(false);
    assert_eq!(run(true), (want, lens.clone()));
    assert_eq!(lens, [40, 12, 7]);

    // Draws must match the sampling sequences one to one, and carry no penalties.
    let mut cache = model.new_cache();
    let mut step = [SequenceStep {
        cache: &mut cache,
        tokens: &b,
        logits: LogitsFor::Last,
    }];
    let penalised = Draw {
        params: SamplingParams {
            repetition_penalty: 1.3,
            ..greedy.params
        },
        ..greedy
    };
    for draws in [&[][..], &[greedy, greedy], &[penalised]] {
        let err = model
            .forward_sampled(&mut step, draws, &mut Scratch::default())
            .unwrap_err();
        assert!(matches!(err, ModelError::InvalidDraws), "{err:?}");
    }
    assert_eq!(
        step[0].cache.len(),
        0,
        "a refused step leaves the cache untouched"
    );
}
