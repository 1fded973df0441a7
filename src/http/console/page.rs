//! The console's HTML: one layout, a few tables, every value escaped. No script and no
//! stylesheet from anywhere else: the page works on a network with no way out.

use std::fmt::Write as _;

use crate::pipeline::explain::Explanation;
use crate::pipeline::{Step, StepKind};
use crate::queue::{DeadLetter, JournalEntry};

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a URL path segment.
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}nav a{margin-right:1em}.outcome{font-weight:600}.muted{color:#777}\
ol.timeline{list-style:none;padding-left:0;border-left:3px solid #4a7;margin-left:.5em}\
ol.timeline li{padding:.2em .8em}ol.timeline .at{display:inline-block;min-width:5em;color:#777}\
form{margin:.5em 0 1.5em}input{margin-right:.5em}.notice{background:#eef7ee;padding:.5em;border:1px solid #9c9}";

/// The whole page around `body`.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · attrsync</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/console\">Recent events</a>\
         <a href=\"/console/dead-letters\">Dead letters</a><a href=\"/console/explain\">Explain</a></nav>\
         <h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

/// The search and filter forms above the recent events.
pub fn filters(conversation: &str, outcome: &str, source: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/console/conversations\" id=\"search\">\
         <label>Conversation id <input name=\"id\" id=\"conversation-id\" size=\"40\" \
         value=\"{}\"></label>\
         <button type=\"submit\" id=\"search-button\">Search</button></form>\
         <form method=\"get\" action=\"/console\" id=\"filter\">\
         <label>Outcome <input name=\"outcome\" id=\"outcome\" value=\"{}\"></label>\
         <label>Source <input name=\"source\" id=\"source\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"filter-button\">Filter</button></form>",
        esc(conversation),
        esc(outcome),
        esc(source)
    )
}

/// Runs as a table, each linking to its event's timeline.
pub fn entries_table(entries: &[JournalEntry]) -> String {
    if entries.is_empty() {
        return "<p class=\"muted\" id=\"no-entries\">Nothing journaled.</p>".to_owned();
    }
    let mut out = String::from(
        "<table id=\"entries\"><tr><th>Recorded</th><th>Event</th><th>Source</th>\
         <th>Conversation</th><th>Attempt</th><th>Outcome</th></tr>",
    );
    for e in entries {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a class=\"event\" href=\"/console/events/{}\">{}</a></td><td>{}</td>\
             <td><a href=\"/console/conversations?id={}\">{}</a></td><td>{}</td><td class=\"outcome\">{}</td></tr>",
            time(e.recorded_at_ms),
            segment(&e.event_id),
            esc(&e.event_id),
            esc(&e.source),
            segment(&e.conversation_id),
            esc(&e.conversation_id),
            e.attempt,
            esc(&e.outcome)
        );
    }
    out.push_str("</table>");
    out
}

/// One run's journey as a timeline.
pub fn timeline(entry: &JournalEntry) -> String {
    let mut out = format!(
        "<h2>Attempt {} · <span class=\"outcome\">{}</span></h2><p class=\"muted\">source {}, \
         conversation <a href=\"/console/conversations?id={}\">{}</a>, accepted {}</p><ol class=\"timeline\">",
        entry.attempt,
        esc(&entry.outcome),
        esc(&entry.source),
        segment(&entry.conversation_id),
        esc(&entry.conversation_id),
        time(entry.accepted_at_ms)
    );
    for step in &entry.steps {
        let _ = write!(
            out,
            "<li class=\"step\"><span class=\"at\">+{} ms</span> {}</li>",
            step.at_ms,
            describe(step)
        );
    }
    out.push_str("</ol>");
    out
}

fn describe(step: &Step) -> String {
    let kind = |k: &Option<crate::domain::KeyKind>| k.map_or("-", |k| k.as_str());
    match &step.what {
        StepKind::Arrived {
            source,
            waited_ms,
            attempt,
            ..
        } => format!(
            "<b>arrived</b> from {} (attempt {attempt}, waited {waited_ms} ms in the queue)",
            esc(source)
        ),
        StepKind::Key {
            kind,
            notation,
            value,
        } => format!(
            "<b>key</b> {} in {}: <code>{}</code>",
            kind.as_str(),
            esc(notation),
            esc(value)
        ),
        StepKind::Crm {
            source,
            key,
            cache,
            answer,
            error,
            candidates,
            ms,
        } => format!(
            "<b>CRM</b> {} by {}: {}{} · cache {} · {candidates} candidate(s) · {ms} ms",
            esc(source),
            kind(key),
            esc(answer),
            error
                .as_deref()
                .map(|e| format!(" ({})", esc(e)))
                .unwrap_or_default(),
            esc(cache)
        ),
        StepKind::Decision {
            verdict,
            count,
            record_type,
            matched_by,
        } => format!(
            "<b>decision</b> {} · {count} match(es){}{}",
            esc(verdict),
            record_type
                .as_deref()
                .map(|t| format!(" · {}", esc(t)))
                .unwrap_or_default(),
            matched_by
                .map(|k| format!(" · by {}", k.as_str()))
                .unwrap_or_default()
        ),
        StepKind::Upstream {
            service,
            operation,
            status,
            ms,
        } => format!(
            "<b>{}</b> {} → {} · {ms} ms",
            esc(service),
            esc(operation),
            esc(status)
        ),
        StepKind::Written { attributes } => {
            format!("<b>written</b> {}", esc(&attributes.join(", ")))
        }
        StepKind::NothingWritten { reason } => format!("<b>nothing written</b>: {}", esc(reason)),
        StepKind::Retry { reason, delay_ms } => {
            format!("<b>retry</b> in {delay_ms} ms: {}", esc(reason))
        }
        StepKind::DeadLettered { reason } => format!("<b>dead letter</b>: {}", esc(reason)),
        StepKind::Outcome { outcome } => {
            format!(
                "<b>outcome</b> <span class=\"outcome\">{}</span>",
                esc(outcome)
            )
        }
    }
}

/// Dead letters, each with a replay button.
pub fn dead_letters(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "<p class=\"muted\" id=\"no-dead-letters\">No dead letters.</p>".to_owned();
    }
    let mut out = String::from(
        "<table id=\"dead-letters\"><tr><th>Id</th><th>Event</th><th>Attempts</th><th>Last error</th>\
         <th>Failed</th><th></th></tr>",
    );
    for d in letters {
        let _ = write!(
            out,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>\
             <form method=\"post\" action=\"/console/dead-letters/{id}/replay\">\
             <button type=\"submit\" class=\"replay\" id=\"replay-{id}\">Replay</button></form></td></tr>",
            esc(&d.event_key),
            d.attempts,
            esc(&d.last_error),
            time(d.failed_at_ms),
            id = d.id
        );
    }
    out.push_str("</table>");
    out
}

/// The explain form, with what was asked filled in.
pub fn explain_form(ani: &str, email: &str, customer_id: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/console/explain\" id=\"explain\">\
         <label>ANI <input name=\"ani\" id=\"ani\" value=\"{}\"></label>\
         <label>Email <input name=\"email\" id=\"email\" value=\"{}\"></label>\
         <label>Customer id <input name=\"customerId\" id=\"customer-id\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"explain-button\">Explain</button></form>",
        esc(ani),
        esc(email),
        esc(customer_id)
    )
}

/// A dry run's answer.
pub fn explanation(e: &Explanation) -> String {
    let mut out = String::from(
        "<h2>Keys tried</h2><table id=\"explain-keys\"><tr><th>Kind</th><th>Notations</th></tr>",
    );
    for key in &e.keys {
        let shown: Vec<String> = key
            .notations
            .iter()
            .map(|n| format!("{}: <code>{}</code>", esc(&n.notation), esc(&n.value)))
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            key.kind.as_str(),
            shown.join("<br>")
        );
    }
    out.push_str("</table><h2>Sources</h2><table id=\"explain-sources\"><tr><th>Source</th><th>Key</th><th>Cache</th><th>Answer</th><th>Candidates</th><th>ms</th></tr>");
    for s in &e.sources {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            s.source,
            s.key.map_or("-", |k| k.as_str()),
            s.cache,
            s.answer,
            s.error.map(|e| format!(" ({e})")).unwrap_or_default(),
            s.candidates,
            s.ms
        );
    }
    let d = &e.decision;
    let _ = write!(
        out,
        "</table><h2>Decision</h2><p id=\"explain-decision\"><span class=\"outcome\">{}</span> · {} match(es){}{}</p>",
        d.verdict,
        d.match_count,
        d.record_type.as_deref().map(|t| format!(" · {}", esc(t))).unwrap_or_default(),
        d.record_id.as_deref().map(|t| format!(" <code>{}</code>", esc(t))).unwrap_or_default()
    );
    out.push_str("<h2>Patch that would be written (nothing was)</h2><table id=\"explain-patch\"><tr><th>Attribute</th><th>Value</th></tr>");
    for (name, value) in &e.patch {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(value)
        );
    }
    out.push_str("</table>");
    out
}

/// Unix milliseconds as UTC time.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_value_is_shown_as_text() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn the_search_box_keeps_what_was_searched_for_as_text() {
        let form = filters("\"><b>x", "crm_miss", "");
        assert!(
            form.contains("id=\"conversation-id\" size=\"40\" value=\"&quot;&gt;&lt;b&gt;x\""),
            "{form}"
        );
        assert!(form.contains("id=\"outcome\" value=\"crm_miss\""), "{form}");
    }
}
