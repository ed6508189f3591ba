//! The comparison card: serde types and the published JSON schema they follow (versioned).
//! Every field read from a screenshot is optional: `null` means "not visible in the screenshot".

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::scorecard::{Angle, Scorecard};
use crate::{Error, Result};

/// Version of the card format; bumped whenever the schema changes.
pub const CARD_SCHEMA_VERSION: &str = "vlm-compare-card/2";

/// The first version, still read: its cards have no panel figure, community vote or
/// scorecard.
pub const CARD_SCHEMA_V1: &str = "vlm-compare-card/1";

/// A side-by-side comparison of two or more tools, read off their screenshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`CARD_SCHEMA_VERSION`].
    pub(crate) schema_version: String,
    /// "A vs B — which one should you ship with?"
    pub title: String,
    /// One card per screenshot, in the order given.
    pub tools: Vec<ToolCard>,
    /// The facts on which the tools differ.
    pub differences: Vec<Difference>,
    /// A few sentences built only from the cards' text.
    pub verdict: String,
    /// Things the reader should know about the run (duplicate screenshots, unfinished
    /// answers).
    pub warnings: Vec<String>,
    /// How the run went; not part of the card format.
    #[serde(skip)]
    pub stats: super::CompareStats,
}

/// What one screenshot shows about one tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCard {
    /// Product name.
    pub name: Option<String>,
    /// Kind of tool, e.g. "code editor".
    pub(crate) category: Option<String>,
    /// The one-line pitch.
    pub(crate) tagline: Option<String>,
    /// The lowest price shown, as shown ("$20/mo", "Free").
    pub entry_price: Option<String>,
    /// How it is sold.
    pub pricing_model: Option<PricingModel>,
    /// Short label → value pairs as shown ("Templates" → "240+").
    pub key_facts: Option<Vec<KeyFact>>,
    /// Up to five short claims the page makes.
    pub claims: Option<Vec<String>>,
    /// Ratings or scores as shown ("4.8/5 on G2").
    pub ratings: Option<Vec<String>>,
    /// A ship or recommendation figure from a review panel, as shown ("82% would ship").
    #[serde(default)]
    pub panel_ship: Option<String>,
    /// A community vote, as shown ("1,204 upvotes").
    #[serde(default)]
    pub community_vote: Option<String>,
    /// The reviewer scorecard, as the page reads it from four angles.
    #[serde(default)]
    pub scorecard: Option<Scorecard>,
    /// The screenshot this card was read from.
    pub source: Source,
}

impl ToolCard {
    /// The text of one field of a card, on one line; `None` when not visible.
    pub(crate) fn field_text(&self, field: Field) -> Option<String> {
        match field {
            Field::Name => self.name.clone(),
            Field::Category => self.category.clone(),
            Field::Tagline => self.tagline.clone(),
            Field::EntryPrice => self.entry_price.clone(),
            Field::PricingModel => self.pricing_model.map(|p| p.as_str().to_string()),
            Field::KeyFacts => self.key_facts.as_ref().map(|facts| {
                facts
                    .iter()
                    .map(|f| format!("{}: {}", f.label, f.value))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            Field::Claims => self.claims.as_ref().map(|c| c.join("; ")),
            Field::Ratings => self.ratings.as_ref().map(|r| r.join("; ")),
            Field::PanelShip => self.panel_ship.clone(),
            Field::CommunityVote => self.community_vote.clone(),
            Field::Scorecard(angle) => {
                let entries = self.scorecard.as_ref()?.entries(angle)?;
                let shown: Vec<String> = entries
                    .iter()
                    .filter_map(|(p, v)| Some(format!("{}: {}", p.label, (*v)?)))
                    .collect();
                (!shown.is_empty()).then(|| shown.join("; "))
            }
        }
    }
}

/// How a tool is sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PricingModel {
    /// Free to use.
    #[serde(rename = "free")]
    Free,
    /// A free tier and paid plans.
    #[serde(rename = "freemium")]
    Freemium,
    /// Paid, after a free trial.
    #[serde(rename = "free trial")]
    FreeTrial,
    /// Paid only.
    #[serde(rename = "paid")]
    Paid,
    /// Open-source software.
    #[serde(rename = "open source")]
    OpenSource,
    /// The page shows prices but not how they fit together.
    #[serde(rename = "unknown")]
    Unknown,
}

impl PricingModel {
    /// Every value, in schema order.
    pub(crate) const ALL: [PricingModel; 6] = [
        PricingModel::Free,
        PricingModel::Freemium,
        PricingModel::FreeTrial,
        PricingModel::Paid,
        PricingModel::OpenSource,
        PricingModel::Unknown,
    ];

    /// The text used in the card ("free trial").
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PricingModel::Free => "free",
            PricingModel::Freemium => "freemium",
            PricingModel::FreeTrial => "free trial",
            PricingModel::Paid => "paid",
            PricingModel::OpenSource => "open source",
            PricingModel::Unknown => "unknown",
        }
    }

    /// The value whose text is `s`.
    pub(crate) fn parse(s: &str) -> Option<PricingModel> {
        PricingModel::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A label → value pair as shown on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFact {
    /// "Templates".
    pub(crate) label: String,
    /// "240+".
    pub(crate) value: String,
}

/// The screenshot a card was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// File name (or "image N" for in-memory images).
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// One fact on which the tools differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs ("Entry price", or a key-fact label).
    pub field: String,
    /// Each tool's value, in tool order; `null` = not visible.
    pub values: Vec<Option<String>>,
}

/// The fields read from each screenshot, one question each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// [`ToolCard::name`].
    Name,
    /// `ToolCard::category`.
    Category,
    /// `ToolCard::tagline`.
    Tagline,
    /// [`ToolCard::entry_price`].
    EntryPrice,
    /// [`ToolCard::pricing_model`].
    PricingModel,
    /// [`ToolCard::key_facts`].
    KeyFacts,
    /// [`ToolCard::claims`].
    Claims,
    /// [`ToolCard::ratings`].
    Ratings,
    /// [`ToolCard::panel_ship`].
    PanelShip,
    /// [`ToolCard::community_vote`].
    CommunityVote,
    /// One angle of [`ToolCard::scorecard`].
    Scorecard(Angle),
}

impl Field {
    /// Every field, in card order: the facts, then the scorecard's angles.
    pub const ALL: [Field; 14] = [
        Field::Name,
        Field::Category,
        Field::Tagline,
        Field::EntryPrice,
        Field::PricingModel,
        Field::KeyFacts,
        Field::Claims,
        Field::Ratings,
        Field::PanelShip,
        Field::CommunityVote,
        Field::Scorecard(Angle::DeveloperExperience),
        Field::Scorecard(Angle::Competition),
        Field::Scorecard(Angle::Thesis),
        Field::Scorecard(Angle::Business),
    ];

    /// The fields that are read off the page as shown (every one but the scorecard's angles).
    pub fn facts() -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(|f| f.angle().is_none())
    }

    /// The scorecard angle this field is, if any.
    fn angle(self) -> Option<Angle> {
        match self {
            Field::Scorecard(a) => Some(a),
            _ => None,
        }
    }

    /// The JSON key ("entry_price").
    fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Category => "category",
            Field::Tagline => "tagline",
            Field::EntryPrice => "entry_price",
            Field::PricingModel => "pricing_model",
            Field::KeyFacts => "key_facts",
            Field::Claims => "claims",
            Field::Ratings => "ratings",
            Field::PanelShip => "panel_ship",
            Field::CommunityVote => "community_vote",
            Field::Scorecard(a) => a.key(),
        }
    }

    /// The row label ("Entry price").
    pub fn label(self) -> &'static str {
        match self {
            Field::Name => "Name",
            Field::Category => "Category",
            Field::Tagline => "Tagline",
            Field::EntryPrice => "Entry price",
            Field::PricingModel => "Pricing model",
            Field::KeyFacts => "Key facts",
            Field::Claims => "Claims",
            Field::Ratings => "Ratings",
            Field::PanelShip => "Panel ship",
            Field::CommunityVote => "Community vote",
            Field::Scorecard(a) => a.label(),
        }
    }

    /// The JSON schema of the field's value, `null` included.
    pub(crate) fn schema(self) -> Value {
        let text =
            |max: usize| json!({"type": ["string", "null"], "minLength": 1, "maxLength": max});
        let list = |max_items: usize, max_len: usize| {
            json!({
                "type": ["array", "null"],
                "maxItems": max_items,
                "items": {"type": "string", "minLength": 1, "maxLength": max_len}
            })
        };
        match self {
            Field::Name => text(LIMITS.name),
            Field::Category => text(LIMITS.category),
            Field::Tagline => text(LIMITS.tagline),
            Field::EntryPrice => text(LIMITS.entry_price),
            Field::PricingModel => {
                let mut values: Vec<Value> = PricingModel::ALL
                    .iter()
                    .map(|p| Value::from(p.as_str()))
                    .collect();
                values.push(Value::Null);
                json!({ "enum": values })
            }
            Field::KeyFacts => json!({
                "type": ["array", "null"],
                "maxItems": LIMITS.key_facts,
                "items": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string", "minLength": 1, "maxLength": LIMITS.fact_label},
                        "value": {"type": "string", "minLength": 1, "maxLength": LIMITS.fact_value}
                    },
                    "required": ["label", "value"],
                    "additionalProperties": false
                }
            }),
            Field::Claims => list(LIMITS.claims, LIMITS.claim),
            Field::Ratings => list(LIMITS.ratings, LIMITS.rating),
            Field::PanelShip => text(LIMITS.panel_ship),
            Field::CommunityVote => text(LIMITS.community_vote),
            Field::Scorecard(a) => a.schema(),
        }
    }
}

/// Length limits of the card's text, in characters (lists: in items).
pub(crate) struct Limits {
    /// Product name.
    pub(crate) name: usize,
    /// Category.
    pub(crate) category: usize,
    /// Tagline.
    pub(crate) tagline: usize,
    /// Entry price.
    pub(crate) entry_price: usize,
    /// Key facts per tool.
    pub(crate) key_facts: usize,
    /// A key fact's label.
    pub(crate) fact_label: usize,
    /// A key fact's value.
    pub(crate) fact_value: usize,
    /// Claims per tool.
    pub(crate) claims: usize,
    /// One claim.
    pub(crate) claim: usize,
    /// Ratings per tool.
    pub(crate) ratings: usize,
    /// One rating.
    pub(crate) rating: usize,
    /// The panel's ship figure.
    pub(crate) panel_ship: usize,
    /// The community vote.
    pub(crate) community_vote: usize,
}

/// The limits the schema publishes.
pub(crate) const LIMITS: Limits = Limits {
    name: 60,
    category: 40,
    tagline: 140,
    entry_price: 40,
    key_facts: 8,
    fact_label: 32,
    fact_value: 48,
    claims: 5,
    claim: 100,
    ratings: 4,
    rating: 48,
    panel_ship: 60,
    community_vote: 60,
};

/// The JSON schema (draft 2020-12) of a [`Comparison`] as [`super::render::json`] writes it.
pub fn card_schema() -> Value {
    let mut tool_props = serde_json::Map::new();
    for field in Field::facts() {
        tool_props.insert(field.key().into(), field.schema());
    }
    tool_props.insert("scorecard".into(), Scorecard::schema());
    tool_props.insert(
        "source".into(),
        json!({
            "type": "object",
            "properties": {
                "file": {"type": "string"},
                "bytes": {"type": "integer", "minimum": 0},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}
            },
            "required": ["file", "bytes", "sha256"],
            "additionalProperties": false
        }),
    );
    let tool_required: Vec<&str> = Field::facts()
        .map(|f| f.key())
        .chain(["scorecard", "source"])
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vlm compare card",
        "description": format!("{CARD_SCHEMA_VERSION}: tools read off screenshots, side by side. null = not visible in the screenshot."),
        "type": "object",
        "properties": {
            "schema_version": {"const": CARD_SCHEMA_VERSION},
            "title": {"type": "string"},
            "tools": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "properties": tool_props,
                    "required": tool_required,
                    "additionalProperties": false
                }
            },
            "differences": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "values": {"type": "array", "items": {"type": ["string", "null"]}}
                    },
                    "required": ["field", "values"],
                    "additionalProperties": false
                }
            },
            "verdict": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["schema_version", "title", "tools", "differences", "verdict", "warnings"],
        "additionalProperties": false
    })
}

impl Comparison {
    /// Reads a card written by [`super::render::json`], in this version or
    /// [`CARD_SCHEMA_V1`] (upgraded: its tools have no panel figure, vote or scorecard).
    /// `origin` names the input in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Comparison> {
        let problem = |problem: String| Error::InvalidOption {
            name: "card",
            reason: format!("{origin}: {problem}"),
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| problem(format!("not JSON: {e}")))?;
        match value.get("schema_version").and_then(Value::as_str) {
            Some(CARD_SCHEMA_VERSION | CARD_SCHEMA_V1) => {}
            Some(other) => {
                return Err(problem(format!(
                    "schema version `{other}` is not one this build reads ({CARD_SCHEMA_VERSION}, {CARD_SCHEMA_V1})"
                )))
            }
            None => return Err(problem("no schema_version: not a vlm compare card".into())),
        }
        let mut card: Comparison = serde_json::from_value(value)
            .map_err(|e| problem(format!("not a vlm compare card: {e}")))?;
        card.schema_version = CARD_SCHEMA_VERSION.to_string();
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pricing_models_round_trip() {
        for p in PricingModel::ALL {
            assert_eq!(PricingModel::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(PricingModel::parse("cheap"), None);
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = card_schema();
        let props = &schema["properties"]["tools"]["items"]["properties"];
        for f in Field::facts() {
            assert!(props.get(f.key()).is_some(), "{}", f.key());
        }
        for a in Angle::ALL {
            assert!(props["scorecard"]["properties"].get(a.key()).is_some());
        }
    }

    #[test]
    fn version_one_cards_are_read_and_others_refused() {
        let v1 = json!({
            "schema_version": CARD_SCHEMA_V1,
            "title": "A vs B",
            "tools": [{
                "name": "A", "category": null, "tagline": null, "entry_price": "$5",
                "pricing_model": "paid", "key_facts": null, "claims": null, "ratings": null,
                "source": {"file": "a.png", "bytes": 3, "sha256": "00"}
            }],
            "differences": [], "verdict": "A: from $5 (paid).", "warnings": []
        });
        let card = Comparison::from_json(&v1.to_string(), "old.json").unwrap();
        assert_eq!(card.schema_version, CARD_SCHEMA_VERSION);
        assert_eq!(card.tools[0].entry_price.as_deref(), Some("$5"));
        assert_eq!(card.tools[0].scorecard, None);
        let mut v9 = v1.clone();
        v9["schema_version"] = json!("vlm-compare-card/9");
        let err = Comparison::from_json(&v9.to_string(), "new.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("new.json: schema version `vlm-compare-card/9`"),
            "{err}"
        );
        assert!(Comparison::from_json("{}", "x.json").is_err());
        assert!(Comparison::from_json("[", "x.json").is_err());
    }
}
