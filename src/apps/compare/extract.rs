//! Screenshot → [`ToolCard`]: one short question per field, each answered under a constraint
//! (JSON schema, regex or choice) so every answer parses. The questions go through an
//! [`Extractor`]: the model ([`ModelExtractor`]) or any stand-in that answers them.

use std::time::Duration;

use serde_json::Value;

use super::card::{Field, KeyFact, PricingModel, ToolCard, LIMITS};
use super::scorecard::{Angle, POINT_MAX_CHARS};
use super::{CompareOptions, Shot};
use crate::embedding_cache::EmbeddingCache;
use crate::{
    Constraint, Engine, GenerateOptions, ImageInput, Message, ProcessorOptions, Result, Session,
};

/// One field's question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The field it fills.
    pub field: Field,
    /// What the model is asked.
    prompt: String,
    /// What the answer must look like.
    pub constraint: Constraint,
    /// Most tokens the answer may take; the constraint's length limits fit well inside.
    max_tokens: usize,
}

/// The answer to [`PricingModel`]'s question when the page says nothing about it.
const NOT_VISIBLE: &str = "not visible";

/// The questions asked of every screenshot, in card order.
pub fn questions() -> Vec<Question> {
    Field::ALL.into_iter().map(question).collect()
}

/// The field's schema as a generation constraint: one line of JSON, and no escapes but `\"`
/// and `\\`, so no control character can reach a card.
fn json_constraint(field: Field) -> Constraint {
    let mut schema = field.schema();
    if let Some(map) = schema.as_object_mut() {
        map.insert(
            "x-guidance".into(),
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
                "json_allowed_escapes": "\"\\",
            }),
        );
    }
    Constraint::json_schema(schema)
}

/// The question for one scorecard angle: its points, each as a phrase from the page.
fn scorecard_prompt(angle: Angle) -> String {
    let points = angle.points();
    let asks: Vec<&str> = points.iter().map(|p| p.asks).collect();
    let keys: Vec<String> = points.iter().map(|p| format!("\"{}\"", p.key)).collect();
    format!(
        "Read the reviewer scorecard on this page from the {} angle: {}. Answer with a JSON object with the keys {}, each a short phrase as the page puts it, or null where the page does not say. Use no number that is not on the page. Answer null if the page shows no scorecard.",
        angle.label().to_lowercase(),
        asks.join("; "),
        keys.join(", ")
    )
}

fn question(field: Field) -> Question {
    let json = |prompt: &str| (prompt.to_string(), json_constraint(field));
    let (prompt, constraint) = match field {
        Field::Name => json("What is the name of the product shown in this screenshot? Answer with the name as a JSON string, or null if no name is visible."),
        Field::Category => json("What kind of software tool is this (for example: code editor, AI model, design tool, database)? Answer with a short JSON string, or null if you cannot tell."),
        Field::Tagline => json("What is the main headline or one-line pitch on this page? Answer with it as a JSON string, or null if there is none."),
        Field::EntryPrice => (
            "What is the lowest price shown on this page, written as on the page (for example $20/month or Free)? Answer not visible if no price is shown.".to_string(),
            // A price as shown has a digit in it, or is one of the usual words.
            Constraint::regex(format!(
                "{NOT_VISIBLE}|Free|Contact sales|[^\\n]{{0,16}}[0-9][^\\n]{{0,{}}}",
                LIMITS.entry_price - 17
            )),
        ),
        Field::PricingModel => (
            "How is this tool sold: free, freemium, free trial, paid, open source, or unknown? Answer not visible if the page does not say.".to_string(),
            Constraint::choice(
                PricingModel::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .chain([NOT_VISIBLE]),
            ),
        ),
        Field::KeyFacts => json("List the key facts shown on this page as label and value pairs, exactly as written (for example {\"label\": \"Templates\", \"value\": \"240+\"}). Answer with a JSON array of objects, or null if there are none."),
        Field::Claims => json("List up to five short claims this page makes about the product, as written. Answer with a JSON array of strings, or null if there are none."),
        Field::Ratings => json("List any ratings, scores or review stars shown on this page, as written (for example 4.8/5). Answer with a JSON array of strings, or null if there are none."),
        Field::PanelShip => json("Does this page show a review panel's ship or recommendation figure for the product (for example 82% would ship, or Editor's choice)? Answer with it as written, as a JSON string, or null if none is shown."),
        Field::CommunityVote => json("Does this page show a community vote for the product (for example upvotes, or a share of readers' votes)? Answer with it as written, as a JSON string, or null if none is shown."),
        Field::Scorecard(angle) => (scorecard_prompt(angle), json_constraint(field)),
    };
    let max_tokens = match field {
        Field::KeyFacts => 320,
        Field::Claims => 320,
        Field::Tagline => 96,
        Field::Ratings => 128,
        // A few phrases of at most POINT_MAX_CHARS characters each, and the keys.
        Field::Scorecard(angle) => 48 + angle.points().len() * 64,
        _ => 64,
    };
    Question {
        field,
        prompt,
        constraint,
        max_tokens,
    }
}

/// An extractor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer's text.
    pub text: String,
    /// False when the answer ran out of tokens before its constraint was complete.
    pub complete: bool,
}

/// What opening a screenshot cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opened {
    /// Its image features came from the embedding cache.
    pub from_cache: bool,
    /// Views (tiles plus the global view) of the image.
    pub views: usize,
    /// Vision tower and connector (zero when the features came from the cache).
    pub encode: Duration,
    /// Decoding and hashing the image, the cache look-up, resizing and tokenizing.
    preprocess: Duration,
    /// Why a cache entry for this image was unusable (it was removed and the image
    /// re-encoded).
    pub cache_corrupt: Option<String>,
    /// Prefill of the shared image prefix.
    pub(crate) prefill: Duration,
}

/// Answers the field questions about one screenshot at a time. The model is one
/// implementation; tests script another.
pub trait Extractor {
    /// Makes `shot` the screenshot the following questions are about.
    fn open(&mut self, shot: &Shot) -> Result<Opened>;
    /// Answers one question about the open screenshot.
    fn answer(&mut self, question: &Question) -> Result<Answer>;
}

/// The model as an [`Extractor`]: each screenshot is encoded once (or read from the embedding
/// cache) and prefilled once; every question then runs on a fork of that session, so it costs
/// only its own tokens.
pub struct ModelExtractor<'e> {
    engine: &'e Engine,
    cache: Option<EmbeddingCache>,
    processor: ProcessorOptions,
    base: Option<(Session, ImageInput)>,
}

impl<'e> ModelExtractor<'e> {
    /// An extractor over `engine` with the options' cache and image settings.
    pub fn new(engine: &'e Engine, opts: &CompareOptions) -> Self {
        let cache = opts.cache.then(|| {
            EmbeddingCache::new(
                opts.cache_dir
                    .clone()
                    .or_else(EmbeddingCache::default_dir)
                    .unwrap_or_else(|| std::env::temp_dir().join("vlm-embeddings")),
                opts.cache_max_bytes,
            )
        });
        ModelExtractor {
            engine,
            cache,
            processor: opts
                .processor
                .clone()
                .unwrap_or_else(|| engine.processor_options().clone()),
            base: None,
        }
    }
}

impl Extractor for ModelExtractor<'_> {
    fn open(&mut self, shot: &Shot) -> Result<Opened> {
        self.base = None;
        let mut session = self.engine.session();
        session.set_processor_options(self.processor.clone());
        session.set_embedding_cache(self.cache.clone());
        let before = self.cache.as_ref().map(EmbeddingCache::stats);
        let (usage, timings) = session.prefill(&Message::user([shot.input.clone()], ""))?;
        let after = self.cache.as_ref().map(EmbeddingCache::stats);
        let seq = self.engine.info().image_seq_len.max(1);
        let mut opened = Opened {
            views: usage.image_tokens / seq,
            encode: timings.vision,
            preprocess: timings.preprocess,
            prefill: timings.prefill,
            ..Opened::default()
        };
        if let (Some(before), Some(after)) = (before, after) {
            opened.from_cache = after.hits > before.hits;
            if after.corrupt > before.corrupt {
                opened.cache_corrupt = after.last_corrupt;
            }
        }
        self.base = Some((session, shot.input.clone()));
        Ok(opened)
    }

    fn answer(&mut self, question: &Question) -> Result<Answer> {
        let Some((base, input)) = &self.base else {
            return Err(crate::Error::InvalidOption {
                name: "compare",
                reason: "a question was asked before any screenshot was opened".into(),
            });
        };
        let opts = GenerateOptions {
            max_new_tokens: question.max_tokens,
            constraint: Some(question.constraint.clone()),
            ..GenerateOptions::default()
        };
        let mut session = base.fork()?;
        let g = session.send(
            Message::user([input.clone()], question.prompt.clone()),
            &opts,
        )?;
        Ok(Answer {
            complete: g.finish == crate::FinishReason::Eos,
            text: g.text,
        })
    }
}

/// Stores an answer in `card`; an answer that does not parse leaves the field `null` and
/// returns why.
pub fn apply(card: &mut ToolCard, field: Field, text: &str) -> std::result::Result<(), String> {
    let text = text.trim();
    match field {
        Field::EntryPrice => {
            card.entry_price =
                (text != NOT_VISIBLE && !text.is_empty()).then(|| clip(text, LIMITS.entry_price));
            return Ok(());
        }
        Field::PricingModel => {
            card.pricing_model = match text {
                NOT_VISIBLE => None,
                other => Some(
                    PricingModel::parse(other)
                        .ok_or_else(|| format!("`{other}` is not a pricing model"))?,
                ),
            };
            return Ok(());
        }
        _ => {}
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let string = |max: usize| -> std::result::Result<Option<String>, String> {
        match &value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(nonempty(s).map(|s| clip(s, max))),
            other => Err(format!("expected a string or null, got {other}")),
        }
    };
    match field {
        Field::Name => card.name = string(LIMITS.name)?,
        Field::Category => card.category = string(LIMITS.category)?,
        Field::Tagline => card.tagline = string(LIMITS.tagline)?,
        Field::Claims => card.claims = strings(&value, LIMITS.claims, LIMITS.claim)?,
        Field::Ratings => card.ratings = strings(&value, LIMITS.ratings, LIMITS.rating)?,
        Field::PanelShip => card.panel_ship = string(LIMITS.panel_ship)?,
        Field::CommunityVote => card.community_vote = string(LIMITS.community_vote)?,
        Field::Scorecard(angle) => {
            let scorecard = card.scorecard.get_or_insert_with(Default::default);
            scorecard.set(angle, value)?;
            for slot in scorecard.values_mut(angle).into_iter().flatten() {
                *slot = slot
                    .as_deref()
                    .and_then(nonempty)
                    .map(|s| clip(s, POINT_MAX_CHARS));
            }
            scorecard.drop_empty();
            if scorecard.is_empty() {
                card.scorecard = None;
            }
        }
        Field::KeyFacts => {
            card.key_facts = match &value {
                Value::Null => None,
                Value::Array(items) => {
                    let facts: Vec<KeyFact> = items
                        .iter()
                        .filter_map(|item| {
                            let label = nonempty(item.get("label")?.as_str()?)?;
                            let value = nonempty(item.get("value")?.as_str()?)?;
                            Some(KeyFact {
                                label: clip(label, LIMITS.fact_label),
                                value: clip(value, LIMITS.fact_value),
                            })
                        })
                        .take(LIMITS.key_facts)
                        .collect();
                    (!facts.is_empty()).then_some(facts)
                }
                other => return Err(format!("expected a list of facts or null, got {other}")),
            }
        }
        Field::EntryPrice | Field::PricingModel => {}
    }
    Ok(())
}

/// The numbers written in `text` ("4.8", "1,204" as "1204", "82"), in order.
pub(crate) fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            current.push(c);
        } else if !current.is_empty()
            && (c == '.' || c == ',')
            && chars.peek().is_some_and(char::is_ascii_digit)
        {
            // A thousands separator is dropped; a decimal point is kept.
            if c == '.' {
                current.push(c);
            }
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Clears every scorecard point that names a number the card's facts (everything read off the
/// page as shown: name, tagline, price, facts, claims, ratings, panel figure, vote) do not
/// show, and returns why for each. The model's other answers are the only witness of the page's
/// text, and a number no other answer read is more likely made up than read.
pub(crate) fn ground_scorecard(card: &mut ToolCard) -> Vec<String> {
    let shown: Vec<String> = Field::facts()
        .filter_map(|f| card.field_text(f))
        .flat_map(|t| numbers(&t))
        .collect();
    let mut problems = Vec::new();
    let Some(scorecard) = card.scorecard.as_mut() else {
        return problems;
    };
    for angle in Angle::ALL {
        let points = angle.points();
        for (point, slot) in points
            .iter()
            .zip(scorecard.values_mut(angle).into_iter().flatten())
        {
            let Some(text) = slot.as_deref() else {
                continue;
            };
            if let Some(n) = numbers(text).into_iter().find(|n| !shown.contains(n)) {
                problems.push(format!(
                    "{} / {} left as not visible (it names {n}, which no field of the page shows)",
                    angle.label().to_lowercase(),
                    point.label.to_lowercase()
                ));
                *slot = None;
            }
        }
    }
    scorecard.drop_empty();
    if scorecard.is_empty() {
        card.scorecard = None;
    }
    problems
}

fn strings(
    value: &Value,
    max_items: usize,
    max_len: usize,
) -> std::result::Result<Option<Vec<String>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let list: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().and_then(nonempty))
                .map(|s| clip(s, max_len))
                .take(max_items)
                .collect();
            Ok((!list.is_empty()).then_some(list))
        }
        other => Err(format!("expected a list of strings or null, got {other}")),
    }
}

fn nonempty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// At most `max` characters, on one line, without control characters.
fn clip(s: &str, max: usize) -> String {
    s.replace(char::is_control, " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::constraint::validate;

    #[test]
    fn scripted_answers_satisfy_their_constraints() {
        let good = [
            (Field::Name, "\"Cursor\""),
            (Field::Name, "null"),
            (Field::EntryPrice, "$20/month"),
            (Field::EntryPrice, "not visible"),
            (Field::PricingModel, "free trial"),
            (
                Field::KeyFacts,
                r#"[{"label": "Templates", "value": "240+"}]"#,
            ),
            (Field::Claims, r#"["Ships faster"]"#),
        ];
        for (field, text) in good {
            let q = question(field);
            let v = validate(&q.constraint, text);
            assert!(v.is_ok(), "{field:?}: {text}: {v:?}");
            assert!(apply(&mut ToolCard::default(), field, text).is_ok());
        }
        assert!(validate(&question(Field::EntryPrice).constraint, "cheap").is_err());
        assert!(validate(&question(Field::PricingModel).constraint, "cheap").is_err());
    }

    #[test]
    fn answers_fill_the_card() {
        let mut card = ToolCard::default();
        apply(&mut card, Field::Name, " \"Cursor  IDE\" ").unwrap();
        apply(&mut card, Field::PricingModel, "not visible").unwrap();
        apply(
            &mut card,
            Field::KeyFacts,
            r#"[{"label": "Seats", "value": "5"}, {"label": " ", "value": "x"}]"#,
        )
        .unwrap();
        assert_eq!(card.name.as_deref(), Some("Cursor IDE"));
        assert_eq!(card.pricing_model, None);
        assert_eq!(card.key_facts.as_ref().map(Vec::len), Some(1));
        assert!(apply(&mut card, Field::Claims, "{").is_err());
        assert!(apply(&mut card, Field::Name, "3").is_err());
    }

    #[test]
    fn numbers_are_read_as_written() {
        assert_eq!(
            numbers("4.8/5 on G2, 9,000 teams; 82% ship. v2."),
            ["4.8", "5", "2", "9000", "82", "2"]
        );
        assert!(numbers("no digits here").is_empty());
    }

    #[test]
    fn scorecard_points_with_numbers_the_page_does_not_show_are_cleared() {
        let mut card = ToolCard::default();
        apply(
            &mut card,
            Field::KeyFacts,
            r#"[{"label": "Templates", "value": "240+"}]"#,
        )
        .unwrap();
        apply(
            &mut card,
            Field::Scorecard(Angle::Business),
            r#"{"who_buys": "Teams of 240", "moat": "Priced 40% under rivals", "stress_test": null}"#,
        )
        .unwrap();
        let problems = ground_scorecard(&mut card);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("business / the moat") && problems[0].contains("40"));
        let business = card.scorecard.as_ref().unwrap().business.as_ref().unwrap();
        assert_eq!(business.who_buys.as_deref(), Some("Teams of 240"));
        assert_eq!(business.moat, None);

        // An angle left with nothing visible, and then the whole scorecard, read as null.
        apply(
            &mut card,
            Field::Scorecard(Angle::Business),
            r#"{"who_buys": "Teams of 7", "moat": null, "stress_test": null}"#,
        )
        .unwrap();
        ground_scorecard(&mut card);
        assert_eq!(card.scorecard, None);
    }
}
