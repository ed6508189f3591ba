//! Tool cards → a [`Comparison`]: the title, the rows where the tools differ, and a verdict
//! written only from the cards' own text (no number appears that the cards do not show).
//! Pure; no model.

use super::card::{Comparison, Difference, PricingModel, ToolCard, CARD_SCHEMA_VERSION};

/// Builds the comparison of `cards` (warnings and stats left empty).
pub fn assemble(cards: Vec<ToolCard>) -> Comparison {
    let names: Vec<String> = cards
        .iter()
        .enumerate()
        .map(|(i, c)| display_name(c, i))
        .collect();
    Comparison {
        schema_version: CARD_SCHEMA_VERSION.to_string(),
        title: format!("{} — which one should you ship with?", names.join(" vs ")),
        differences: differences(&cards),
        verdict: verdict(&cards, &names),
        tools: cards,
        warnings: Vec::new(),
        stats: Default::default(),
    }
}

/// The tool's name, or "Tool N (file)" when the screenshot shows none.
pub fn display_name(card: &ToolCard, index: usize) -> String {
    match &card.name {
        Some(name) => name.clone(),
        None => format!("Tool {} ({})", index + 1, card.source.file),
    }
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    let norm = |s: &Option<String>| s.as_deref().map(|s| s.trim().to_lowercase());
    norm(a) == norm(b)
}

/// Rows where at least two tools show different values (a value against "not visible"
/// counts); rows no tool shows are left out.
pub fn differences(cards: &[ToolCard]) -> Vec<Difference> {
    let mut rows = Vec::new();
    let mut row = |field: &str, values: Vec<Option<String>>| {
        let shown = values.iter().any(Option::is_some);
        let differ = values.windows(2).any(|w| !same(&w[0], &w[1]));
        if shown && differ {
            rows.push(Difference {
                field: field.to_string(),
                values,
            });
        }
    };
    row(
        "Category",
        cards.iter().map(|c| c.category.clone()).collect(),
    );
    row(
        "Entry price",
        cards.iter().map(|c| c.entry_price.clone()).collect(),
    );
    row(
        "Pricing model",
        cards
            .iter()
            .map(|c| c.pricing_model.map(|p| p.as_str().to_string()))
            .collect(),
    );
    // Key facts line up by label, case-insensitively, in order of first appearance.
    let mut labels: Vec<String> = Vec::new();
    for fact in cards.iter().flat_map(|c| c.key_facts.iter().flatten()) {
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(&fact.label)) {
            labels.push(fact.label.clone());
        }
    }
    for label in labels {
        let values = cards
            .iter()
            .map(|c| {
                c.key_facts
                    .iter()
                    .flatten()
                    .find(|f| f.label.eq_ignore_ascii_case(&label))
                    .map(|f| f.value.clone())
            })
            .collect();
        row(&label, values);
    }
    row(
        "Ratings",
        cards
            .iter()
            .map(|c| c.ratings.as_ref().map(|r| r.join("; ")))
            .collect(),
    );
    rows
}

fn article(word: &str) -> &'static str {
    match word.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A few sentences from the cards' text alone.
pub fn verdict(cards: &[ToolCard], names: &[String]) -> String {
    let mut sentences = Vec::new();
    for (card, name) in cards.iter().zip(names) {
        let price = match (&card.entry_price, card.pricing_model) {
            (Some(p), Some(m)) => Some(format!("from {p} ({})", m.as_str())),
            (Some(p), None) => Some(format!("from {p}")),
            (None, Some(m)) => Some(format!("{} pricing, no price shown", m.as_str())),
            (None, None) => None,
        };
        sentences.push(match (&card.category, price) {
            (Some(cat), Some(p)) => format!("{name} is {} {cat}, {p}.", article(cat)),
            (Some(cat), None) => format!("{name} is {} {cat}; no price is shown.", article(cat)),
            (None, Some(p)) => format!("{name}: {p}."),
            (None, None) => {
                format!("{name}: the screenshot shows neither a category nor a price.")
            }
        });
    }
    let free = |c: &ToolCard| {
        matches!(
            c.pricing_model,
            Some(PricingModel::Free | PricingModel::OpenSource | PricingModel::Freemium)
        )
    };
    let paid = |c: &ToolCard| {
        matches!(
            c.pricing_model,
            Some(PricingModel::Paid | PricingModel::FreeTrial)
        )
    };
    let pick = |f: &dyn Fn(&ToolCard) -> bool| -> Vec<String> {
        cards
            .iter()
            .zip(names)
            .filter(|(c, _)| f(c))
            .map(|(_, n)| n.clone())
            .collect()
    };
    let (free_names, paid_names) = (pick(&free), pick(&paid));
    if !free_names.is_empty() && !paid_names.is_empty() {
        sentences.push(format!(
            "{} can be started without paying; {} {} paid.",
            list(&free_names),
            list(&paid_names),
            if paid_names.len() == 1 { "is" } else { "are" }
        ));
    }
    let picks: Vec<String> = cards
        .iter()
        .zip(names)
        .filter_map(|(c, n)| {
            let claim = c.claims.as_ref()?.first()?;
            Some(format!("pick {n} if “{claim}” is what you need"))
        })
        .collect();
    if !picks.is_empty() {
        let mut s = picks.join("; ");
        s[..1].make_ascii_uppercase();
        sentences.push(format!("{s}."));
    }
    for (c, n) in cards.iter().zip(names) {
        if let Some(r) = c.ratings.as_ref().and_then(|r| r.first()) {
            sentences.push(format!("{n} shows a rating of {r}."));
        }
    }
    let mut missing = Vec::new();
    for (c, n) in cards.iter().zip(names) {
        let mut gaps = Vec::new();
        if c.entry_price.is_none() {
            gaps.push("price".to_string());
        }
        if c.key_facts.is_none() {
            gaps.push("key facts".to_string());
        }
        if c.claims.is_none() {
            gaps.push("claims".to_string());
        }
        if !gaps.is_empty() {
            missing.push(format!("{n}'s {}", list(&gaps)));
        }
    }
    if !missing.is_empty() {
        sentences.push(format!(
            "Not visible in the screenshots: {}.",
            missing.join("; ")
        ));
    }
    sentences.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::compare::card::{KeyFact, Source};

    fn card(name: &str, price: Option<&str>, facts: &[(&str, &str)]) -> ToolCard {
        ToolCard {
            name: Some(name.into()),
            entry_price: price.map(Into::into),
            key_facts: (!facts.is_empty()).then(|| {
                facts
                    .iter()
                    .map(|(l, v)| KeyFact {
                        label: (*l).into(),
                        value: (*v).into(),
                    })
                    .collect()
            }),
            source: Source {
                file: format!("{name}.png"),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn differences_line_up_facts_by_label() {
        let a = card("A", Some("$10"), &[("Seats", "5"), ("SSO", "yes")]);
        let b = card("B", Some("$10"), &[("seats", "5"), ("Storage", "1 TB")]);
        let rows = differences(&[a, b]);
        let fields: Vec<&str> = rows.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["SSO", "Storage"]);
        assert_eq!(rows[0].values, [Some("yes".to_string()), None]);
    }

    #[test]
    fn the_verdict_uses_only_card_text() {
        let mut a = card("Alpha", Some("$19/mo"), &[]);
        a.pricing_model = Some(PricingModel::Paid);
        a.claims = Some(vec!["Ships 2x faster".into()]);
        let mut b = card("Beta", None, &[]);
        b.pricing_model = Some(PricingModel::OpenSource);
        let c = assemble(vec![a, b]);
        assert_eq!(c.title, "Alpha vs Beta — which one should you ship with?");
        assert!(
            c.verdict.starts_with(
                "Alpha: from $19/mo (paid). Beta: open source pricing, no price shown."
            ),
            "{}",
            c.verdict
        );
        assert!(
            c.verdict
                .contains("Beta can be started without paying; Alpha is paid."),
            "{}",
            c.verdict
        );
        assert!(c.verdict.contains("“Ships 2x faster”"));
        assert!(c.verdict.contains("Not visible in the screenshots: Alpha's key facts; Beta's price, key facts and claims."), "{}", c.verdict);
    }
}
