//! Request bodies, read strictly: every key must be one the route supports (all unknown ones
//! are named in one 400), every value is type- and range-checked, `null` means "not given".

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use textnlp_kernels::cpu::sampling::SamplingParams;

use super::error::ApiError;
use crate::engine::Priority;

/// A JSON object body being taken apart.
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses `bytes` as a JSON object whose keys all appear in `allowed`.
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Body, ApiError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}"))
        })?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the body must be a JSON object",
            ));
        };
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let list = unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut e = ApiError::bad_request(
                "unsupported_parameter",
                format!(
                    "unsupported parameter(s): {list}; this route accepts: {}",
                    allowed.join(", ")
                ),
            );
            e.param = Some(unknown[0].to_owned());
            return Err(e);
        }
        Ok(Body(map))
    }

    /// The value of `key` as `T`, or `None` when absent or null.
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, ApiError> {
        match self.0.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| ApiError::invalid(key, format!("invalid `{key}`: {e}"))),
        }
    }

    /// A required value.
    pub fn require<T: DeserializeOwned>(&mut self, key: &str) -> Result<T, ApiError> {
        self.take(key)?
            .ok_or_else(|| ApiError::invalid(key, format!("`{key}` is required")))
    }

    /// A number that must satisfy `ok` (described by `expected`).
    pub fn number(
        &mut self,
        key: &str,
        ok: impl Fn(f64) -> bool,
        expected: &str,
    ) -> Result<Option<f64>, ApiError> {
        match self.take::<f64>(key)? {
            Some(v) if !(v.is_finite() && ok(v)) => Err(ApiError::invalid(
                key,
                format!("`{key}` = {v} is out of range: expected {expected}"),
            )),
            v => Ok(v),
        }
    }

    /// An integer in `min..=max`.
    pub fn integer(&mut self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.take::<i64>(key)? {
            Some(v) if !(min..=max).contains(&v) => Err(ApiError::invalid(
                key,
                format!("`{key}` = {v} is out of range: expected {min} to {max}"),
            )),
            v => Ok(v),
        }
    }
}

/// Keys every generation route shares (OpenAI's sampling parameters plus our extensions).
pub const GENERATION_KEYS: &[&str] = &[
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    // Extensions (as vLLM names them).
    "top_k",
    "min_p",
    "repetition_penalty",
    "ignore_eos",
    "truncate_prompt",
];

/// Largest `n` (choices per prompt).
pub const MAX_N: i64 = 16;
/// Largest number of stop strings, and the longest one in bytes.
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 256;

/// The generation parameters of a request, checked.
#[derive(Debug, Clone)]
pub struct Generation {
    /// `None`: up to the end of the context.
    pub max_tokens: Option<usize>,
    /// Everything but the seed.
    pub sampling: SamplingParams,
    /// `None`: a fresh seed is drawn (and reported).
    pub seed: Option<u64>,
    pub n: usize,
    pub stop: Vec<String>,
    pub logit_bias: Vec<(u32, f32)>,
    pub ignore_eos: bool,
    pub truncate_prompt: bool,
    pub stream: bool,
    pub include_usage: bool,
    /// Interactive for API calls; batch requests run in the background.
    pub priority: Priority,
}

impl Generation {
    /// Reads the shared keys. `max_tokens_keys` are the names accepted for the token limit
    /// (chat also takes `max_completion_tokens`).
    pub fn read(body: &mut Body, max_tokens_keys: &[&str]) -> Result<Self, ApiError> {
        let mut max_tokens = None;
        for key in max_tokens_keys {
            if let Some(v) = body.integer(key, 1, u32::MAX as i64)? {
                max_tokens = Some(v as usize);
            }
        }
        let temperature = body.number("temperature", |v| (0.0..=2.0).contains(&v), "0 to 2")?;
        let top_p = body.number("top_p", |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
        let min_p = body.number("min_p", |v| (0.0..=1.0).contains(&v), "0 to 1")?;
        let penalty = |v: f64| (-2.0..=2.0).contains(&v);
        let presence = body.number("presence_penalty", penalty, "-2 to 2")?;
        let frequency = body.number("frequency_penalty", penalty, "-2 to 2")?;
        let repetition =
            body.number("repetition_penalty", |v| v > 0.0 && v <= 10.0, "in (0, 10]")?;
        let top_k = body.integer("top_k", -1, 1 << 20)?;
        let sampling = SamplingParams {
            temperature: temperature.unwrap_or(1.0) as f32,
            top_p: top_p.unwrap_or(1.0) as f32,
            min_p: min_p.unwrap_or(0.0) as f32,
            // -1 and 0 both mean "off" (vLLM uses -1).
            top_k: top_k.unwrap_or(0).max(0) as usize,
            presence_penalty: presence.unwrap_or(0.0) as f32,
            frequency_penalty: frequency.unwrap_or(0.0) as f32,
            repetition_penalty: repetition.unwrap_or(1.0) as f32,
            // OpenAI's penalties count the whole completion.
            penalty_last_n: 0,
            seed: 0,
        };
        let seed = body.take::<i64>("seed")?.map(|s| s as u64);
        let n = body.integer("n", 1, MAX_N)?.unwrap_or(1) as usize;
        let stop = read_stop(body)?;
        let logit_bias = read_logit_bias(body)?;
        let ignore_eos = body.take("ignore_eos")?.unwrap_or(false);
        let truncate_prompt = body.take("truncate_prompt")?.unwrap_or(false);
        let stream = body.take("stream")?.unwrap_or(false);
        let include_usage = match body.take::<Map<String, Value>>("stream_options")? {
            None => false,
            Some(_) if !stream => {
                return Err(ApiError::invalid(
                    "stream_options",
                    "`stream_options` is only allowed with `stream: true`",
                ));
            }
            Some(options) => read_stream_options(options)?,
        };
        Ok(Generation {
            max_tokens,
            sampling,
            seed,
            n,
            stop,
            logit_bias,
            ignore_eos,
            truncate_prompt,
            stream,
            include_usage,
            priority: Priority::Interactive,
        })
    }
}

fn read_stream_options(options: Map<String, Value>) -> Result<bool, ApiError> {
    let mut include = false;
    for (key, value) in options {
        match (key.as_str(), value) {
            ("include_usage", Value::Bool(b)) => include = b,
            ("include_usage", Value::Null) => {}
            (key, _) => {
                return Err(ApiError::invalid(
                    "stream_options",
                    format!(
                        "unsupported stream option `{key}` (supported: include_usage, a boolean)"
                    ),
                ));
            }
        }
    }
    Ok(include)
}

fn read_stop(body: &mut Body) -> Result<Vec<String>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }
    let stops = match body.take::<Stop>("stop")? {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOPS} stop sequences"),
        ));
    }
    if let Some(bad) = stops
        .iter()
        .find(|s| s.is_empty() || s.len() > MAX_STOP_BYTES)
    {
        return Err(ApiError::invalid(
            "stop",
            format!("stop sequences must be 1 to {MAX_STOP_BYTES} bytes; got {bad:?}"),
        ));
    }
    Ok(stops)
}

fn read_logit_bias(body: &mut Body) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(map) = body.take::<Map<String, Value>>("logit_bias")? else {
        return Ok(Vec::new());
    };
    map.into_iter()
        .map(|(id, bias)| {
            let id: u32 = id.parse().map_err(|_| {
                ApiError::invalid("logit_bias", format!("`{id}` is not a token id"))
            })?;
            match bias.as_f64() {
                Some(b) if (-100.0..=100.0).contains(&b) => Ok((id, b as f32)),
                _ => Err(ApiError::invalid(
                    "logit_bias",
                    format!("the bias of token {id} must be a number from -100 to 100"),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<Body, ApiError> {
        Body::parse(json.as_bytes(), GENERATION_KEYS)
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let e = body(r#"{"model":"m","frobnicate":1,"best_of":2}"#)
            .err()
            .expect("rejected");
        assert_eq!(e.status, 400);
        assert!(e.message.contains("`best_of`") && e.message.contains("`frobnicate`"));
        assert_eq!(e.param.as_deref(), Some("best_of"));
    }

    #[test]
    fn ranges_and_types_are_checked() {
        for (json, param) in [
            (r#"{"temperature": 3}"#, "temperature"),
            (r#"{"top_p": 0}"#, "top_p"),
            (r#"{"n": 0}"#, "n"),
            (r#"{"max_tokens": 0}"#, "max_tokens"),
            (r#"{"max_tokens": "ten"}"#, "max_tokens"),
            (r#"{"logit_bias": {"12": 101}}"#, "logit_bias"),
            (r#"{"logit_bias": {"x": 1}}"#, "logit_bias"),
            (r#"{"stop": ""}"#, "stop"),
            (
                r#"{"stream_options": {"include_usage": true}}"#,
                "stream_options",
            ),
        ] {
            let e = Generation::read(&mut body(json).unwrap(), &["max_tokens"])
                .err()
                .unwrap_or_else(|| panic!("{json} accepted"));
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
        }
    }

    #[test]
    fn defaults_and_nulls() {
        let g = Generation::read(
            &mut body(r#"{"seed": null, "stop": "x", "stream": true, "stream_options": {"include_usage": true}}"#)
                .unwrap(),
            &["max_tokens"],
        )
        .unwrap();
        assert_eq!(g.seed, None);
        assert_eq!(g.stop, ["x"]);
        assert!(g.include_usage);
        assert_eq!(g.sampling.temperature, 1.0);
        assert_eq!(g.n, 1);
    }
}
