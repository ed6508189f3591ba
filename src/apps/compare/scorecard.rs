//! The reviewer scorecard of a tool card: four angles (developer experience, competition,
//! thesis, business), each a few short points read off the page, every point nullable.
//!
//! The angles and their points are one table ([`Angle::points`]): the extraction question, the
//! JSON schema of its answer, the renderers and the number check all walk it, so adding a point
//! is one line here plus its field in the angle's struct.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest text of one scorecard point, in characters.
pub(crate) const POINT_MAX_CHARS: usize = 160;

/// One angle of the scorecard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Angle {
    /// What the primitive is, the bet on developer experience, the moment of truth.
    DeveloperExperience,
    /// Direct competitors, where it breaks, what kills it in twelve months.
    Competition,
    /// The falsifiable bet and its second-order effects.
    Thesis,
    /// Who buys, the moat, the stress test.
    Business,
}

/// One point of an angle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// JSON key ("dx_bet").
    pub(crate) key: &'static str,
    /// Row label ("DX bet").
    pub(crate) label: &'static str,
    /// What the question asks for ("the bet it makes on developer experience").
    pub(crate) asks: &'static str,
}

impl Angle {
    /// Every angle, in card order.
    pub const ALL: [Angle; 4] = [
        Angle::DeveloperExperience,
        Angle::Competition,
        Angle::Thesis,
        Angle::Business,
    ];

    /// JSON key ("developer_experience").
    pub(crate) fn key(self) -> &'static str {
        match self {
            Angle::DeveloperExperience => "developer_experience",
            Angle::Competition => "competition",
            Angle::Thesis => "thesis",
            Angle::Business => "business",
        }
    }

    /// Heading ("Developer experience").
    pub fn label(self) -> &'static str {
        match self {
            Angle::DeveloperExperience => "Developer experience",
            Angle::Competition => "Competition",
            Angle::Thesis => "Thesis",
            Angle::Business => "Business",
        }
    }

    /// The angle's points, in order.
    pub fn points(self) -> &'static [Point] {
        match self {
            Angle::DeveloperExperience => DeveloperExperience::POINTS,
            Angle::Competition => Competition::POINTS,
            Angle::Thesis => Thesis::POINTS,
            Angle::Business => Business::POINTS,
        }
    }

    /// The JSON schema of the angle: an object with every point (a short string or `null`), or
    /// `null` when the page shows nothing of this angle.
    pub(crate) fn schema(self) -> Value {
        let mut props = serde_json::Map::new();
        for p in self.points() {
            props.insert(
                p.key.into(),
                json!({"type": ["string", "null"], "minLength": 1, "maxLength": POINT_MAX_CHARS}),
            );
        }
        let required: Vec<&str> = self.points().iter().map(|p| p.key).collect();
        json!({
            "type": ["object", "null"],
            "properties": props,
            "required": required,
            "additionalProperties": false
        })
    }
}

/// Defines one angle's notes: a struct with a nullable text per point (serialised as a JSON
/// object with every key) and the point table that questions and renderers walk.
macro_rules! angle_notes {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $label:literal, $asks:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                #[doc = concat!($label, ": ", $asks, ".")]
                pub $field: Option<String>,
            )+
        }

        impl $name {
            /// The points, in order.
            const POINTS: &'static [Point] =
                &[$(Point { key: stringify!($field), label: $label, asks: $asks }),+];

            /// Each point's text, in [`Self::POINTS`] order.
            fn values(&self) -> Vec<Option<&str>> {
                vec![$(self.$field.as_deref()),+]
            }

            /// Each point's slot, in [`Self::POINTS`] order.
            fn values_mut(&mut self) -> Vec<&mut Option<String>> {
                vec![$(&mut self.$field),+]
            }
        }
    };
}

angle_notes! {
    /// [`Angle::DeveloperExperience`].
    DeveloperExperience {
        primitive: "The primitive", "what the core building block is that developers work with";
        dx_bet: "DX bet", "the bet it makes on developer experience";
        moment_of_truth: "Moment of truth", "the moment a developer finds out whether it works for them";
    }
}

angle_notes! {
    /// [`Angle::Competition`].
    Competition {
        direct_competitors: "Direct competitors", "the direct competitors it is measured against";
        where_it_breaks: "Where it breaks", "where it breaks or falls short";
        what_kills_it: "What kills it in 12 months", "what could kill it within twelve months";
    }
}

angle_notes! {
    /// [`Angle::Thesis`].
    Thesis {
        falsifiable_bet: "The falsifiable bet", "the falsifiable bet the product makes";
        second_order_effects: "Second-order effects", "the second-order effects if the bet pays off";
    }
}

angle_notes! {
    /// [`Angle::Business`].
    Business {
        who_buys: "Who buys", "who buys it";
        moat: "The moat", "its moat";
        stress_test: "Stress test", "the stress test its business must survive";
    }
}

/// The scorecard: what the page says from each angle. `None` = not visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    /// [`Angle::DeveloperExperience`].
    developer_experience: Option<DeveloperExperience>,
    /// [`Angle::Competition`].
    pub(crate) competition: Option<Competition>,
    /// [`Angle::Thesis`].
    thesis: Option<Thesis>,
    /// [`Angle::Business`].
    pub business: Option<Business>,
}

impl Scorecard {
    /// `(point, text)` for every point of `angle`; `None` when the angle is not visible.
    pub fn entries(&self, angle: Angle) -> Option<Vec<(Point, Option<&str>)>> {
        let values = match angle {
            Angle::DeveloperExperience => self.developer_experience.as_ref()?.values(),
            Angle::Competition => self.competition.as_ref()?.values(),
            Angle::Thesis => self.thesis.as_ref()?.values(),
            Angle::Business => self.business.as_ref()?.values(),
        };
        Some(angle.points().iter().copied().zip(values).collect())
    }

    /// The slots of `angle`'s points, in order; `None` when the angle is not visible.
    pub(crate) fn values_mut(&mut self, angle: Angle) -> Option<Vec<&mut Option<String>>> {
        Some(match angle {
            Angle::DeveloperExperience => self.developer_experience.as_mut()?.values_mut(),
            Angle::Competition => self.competition.as_mut()?.values_mut(),
            Angle::Thesis => self.thesis.as_mut()?.values_mut(),
            Angle::Business => self.business.as_mut()?.values_mut(),
        })
    }

    /// Stores the answer for `angle` (a JSON object of its points, or `null`); an angle whose
    /// points are all `null` is stored as not visible.
    pub(crate) fn set(&mut self, angle: Angle, value: Value) -> Result<(), String> {
        fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<Option<T>, String> {
            match value {
                Value::Null => Ok(None),
                v => serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| e.to_string()),
            }
        }
        match angle {
            Angle::DeveloperExperience => self.developer_experience = parse(value)?,
            Angle::Competition => self.competition = parse(value)?,
            Angle::Thesis => self.thesis = parse(value)?,
            Angle::Business => self.business = parse(value)?,
        }
        self.drop_empty();
        Ok(())
    }

    /// Turns angles with no visible point into `None`.
    pub(crate) fn drop_empty(&mut self) {
        for angle in Angle::ALL {
            let empty = self
                .entries(angle)
                .is_some_and(|e| e.iter().all(|(_, v)| v.is_none()));
            if empty {
                match angle {
                    Angle::DeveloperExperience => self.developer_experience = None,
                    Angle::Competition => self.competition = None,
                    Angle::Thesis => self.thesis = None,
                    Angle::Business => self.business = None,
                }
            }
        }
    }

    /// True when no angle is visible.
    pub(crate) fn is_empty(&self) -> bool {
        Angle::ALL.iter().all(|a| self.entries(*a).is_none())
    }

    /// The JSON schema of a scorecard (`null` = the page shows none).
    pub(crate) fn schema() -> Value {
        let mut props = serde_json::Map::new();
        for a in Angle::ALL {
            props.insert(a.key().into(), a.schema());
        }
        let required: Vec<&str> = Angle::ALL.iter().map(|a| a.key()).collect();
        json!({
            "type": ["object", "null"],
            "properties": props,
            "required": required,
            "additionalProperties": false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_angle_round_trips_through_its_schema_keys() {
        let mut card = Scorecard::default();
        for angle in Angle::ALL {
            let object: serde_json::Map<String, Value> = angle
                .points()
                .iter()
                .map(|p| (p.key.to_string(), Value::from(format!("{} text", p.label))))
                .collect();
            card.set(angle, Value::Object(object)).unwrap();
            let entries = card.entries(angle).unwrap();
            assert_eq!(entries.len(), angle.points().len());
            assert!(entries
                .iter()
                .all(|(p, v)| *v == Some(&*format!("{} text", p.label))));
        }
        let json = serde_json::to_value(&card).unwrap();
        for angle in Angle::ALL {
            for p in angle.points() {
                assert!(
                    json[angle.key()][p.key].is_string(),
                    "{}.{}",
                    angle.key(),
                    p.key
                );
            }
        }
        let back: Scorecard = serde_json::from_value(json).unwrap();
        assert_eq!(back, card);
    }

    #[test]
    fn all_null_angles_are_not_visible_and_unknown_points_are_refused() {
        let mut card = Scorecard::default();
        card.set(
            Angle::Thesis,
            json!({"falsifiable_bet": null, "second_order_effects": null}),
        )
        .unwrap();
        assert!(card.is_empty());
        assert!(card.set(Angle::Business, json!({"price": "$5"})).is_err());
        assert!(card.set(Angle::Business, json!([1])).is_err());
    }
}
