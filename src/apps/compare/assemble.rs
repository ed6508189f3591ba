//! Tool cards → a [`Comparison`]: the title, the rows where the tools differ, and a verdict
//! written only from the cards' own text (no number appears that the cards do not show).
//! Pure; no model.

use super::card::{Comparison, Difference, PricingModel, ToolCard, CARD_SCHEMA_VERSION};
use super::extract::numbers;

/// Builds the comparison of `cards` (warnings and stats left empty).
pub(crate) fn assemble(cards: Vec<ToolCard>) -> Comparison {
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
pub(crate) fn display_name(card: &ToolCard, index: usize) -> String {
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
fn differences(cards: &[ToolCard]) -> Vec<Difference> {
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
    row(
        "Panel ship",
        cards.iter().map(|c| c.panel_ship.clone()).collect(),
    );
    row(
        "Community vote",
        cards.iter().map(|c| c.community_vote.clone()).collect(),
    );
    rows
}

/// A figure read from a panel's ship figure or a vote, so that tools can be ranked on it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Figure {
    /// A share: "82%" is 0.82, "4/5" and "4 of 5" are 0.8.
    Share(f64),
    /// A count: "1,204 upvotes".
    Count(f64),
}

/// The figure in `text`, if it has one.
fn figure(text: &str) -> Option<Figure> {
    let nums: Vec<f64> = numbers(text)
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    let first = *nums.first()?;
    let lower = text.to_lowercase();
    if lower.contains('%') {
        return Some(Figure::Share(first / 100.0));
    }
    if nums.len() >= 2 && (lower.contains('/') || lower.contains(" of ")) && nums[1] > 0.0 {
        return Some(Figure::Share(first / nums[1]));
    }
    Some(Figure::Count(first))
}

/// The one tool whose figure is highest, when at least two tools show figures of one kind
/// (shares or counts, not a mix) and no other ties it.
fn leader(figures: &[Option<Figure>]) -> Option<usize> {
    let shown: Vec<(usize, Figure)> = figures
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, (*f)?)))
        .collect();
    if shown.len() < 2 {
        return None;
    }
    let value = |f: Figure| match f {
        Figure::Share(v) | Figure::Count(v) => v,
    };
    let same_kind = shown
        .iter()
        .all(|(_, f)| std::mem::discriminant(f) == std::mem::discriminant(&shown[0].1));
    if !same_kind {
        return None;
    }
    let best = shown
        .iter()
        .map(|(_, f)| value(*f))
        .fold(f64::NEG_INFINITY, f64::max);
    let mut at_best = shown.iter().filter(|(_, f)| value(*f) == best);
    match (at_best.next(), at_best.next()) {
        (Some((i, _)), None) => Some(*i),
        _ => None,
    }
}

/// The verdict's last sentence: which tool to ship with, from the panel's figures, then the
/// community's votes; when neither settles it, where each one breaks as the scorecards say.
fn ship_with(cards: &[ToolCard], names: &[String]) -> String {
    let quoted = |texts: Vec<Option<&String>>| -> String {
        let shown: Vec<String> = texts
            .iter()
            .zip(names)
            .filter_map(|(t, n)| Some(format!("{n} “{}”", (*t)?)))
            .collect();
        shown.join(", ")
    };
    // The panel's figure decides first; the community's vote only when the panel does not.
    type TextOf = fn(&ToolCard) -> Option<&String>;
    let ranked: [(TextOf, &str); 2] = [
        (
            |c| c.panel_ship.as_ref(),
            "the panel's ship figure is the highest",
        ),
        (
            |c| c.community_vote.as_ref(),
            "the community vote favours it",
        ),
    ];
    for (text_of, why) in ranked {
        let figures: Vec<Option<Figure>> = cards
            .iter()
            .map(|c| text_of(c).and_then(|t| figure(t)))
            .collect();
        if let Some(i) = leader(&figures) {
            return format!(
                "Ship with {}: {why} ({}).",
                names[i],
                quoted(cards.iter().map(text_of).collect())
            );
        }
    }
    let breaks: Vec<String> = cards
        .iter()
        .zip(names)
        .filter_map(|(c, n)| {
            let text = c
                .scorecard
                .as_ref()?
                .competition
                .as_ref()?
                .where_it_breaks
                .as_ref()?;
            Some(format!("{n} “{text}”"))
        })
        .collect();
    if breaks.is_empty() {
        "The screenshots do not settle which one to ship with.".to_string()
    } else {
        format!(
            "The screenshots do not settle which one to ship with; where each breaks: {}.",
            breaks.join("; ")
        )
    }
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
fn verdict(cards: &[ToolCard], names: &[String]) -> String {
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
    sentences.push(ship_with(cards, names));
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
        assert!(
            c.verdict
                .ends_with("The screenshots do not settle which one to ship with."),
            "{}",
            c.verdict
        );
    }

    #[test]
    fn figures_read_shares_and_counts() {
        assert_eq!(figure("82% would ship"), Some(Figure::Share(0.82)));
        assert_eq!(figure("4/5 reviewers ship"), Some(Figure::Share(0.8)));
        assert_eq!(figure("3 of 4 would ship"), Some(Figure::Share(0.75)));
        assert_eq!(figure("1,204 upvotes"), Some(Figure::Count(1204.0)));
        assert_eq!(figure("Editor's choice"), None);
    }

    #[test]
    fn the_verdict_ends_with_which_one_to_ship_with() {
        let mut a = card("Alpha", None, &[]);
        let mut b = card("Beta", None, &[]);
        a.panel_ship = Some("4/5 ship".into());
        b.panel_ship = Some("72% ship".into());
        let v = assemble(vec![a.clone(), b.clone()]).verdict;
        assert!(
            v.ends_with("Ship with Alpha: the panel's ship figure is the highest (Alpha “4/5 ship”, Beta “72% ship”)."),
            "{v}"
        );
        // A tie on the panel falls through to the community vote.
        b.panel_ship = Some("80% ship".into());
        a.community_vote = Some("310 upvotes".into());
        b.community_vote = Some("1,204 upvotes".into());
        let v = assemble(vec![a.clone(), b.clone()]).verdict;
        assert!(v.ends_with("Ship with Beta: the community vote favours it (Alpha “310 upvotes”, Beta “1,204 upvotes”)."), "{v}");
        // Shares against counts do not rank.
        b.community_vote = Some("64%".into());
        let v = assemble(vec![a, b]).verdict;
        assert!(
            v.ends_with("The screenshots do not settle which one to ship with."),
            "{v}"
        );
    }
}
