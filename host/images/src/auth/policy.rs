//! Glance's role-based access policy: the default rules of Glance's "secure RBAC" (admin,
//! project member, project reader, the service role), written in oslo.policy's check
//! language, evaluated against the caller's [`Identity`] and a [`Target`] (the image or
//! namespace acted on), and overridable per rule by an operator policy file.
//!
//! The language (what oslo.policy accepts, minus the HTTP check): `role:NAME`,
//! `rule:NAME`, `project_id:%(key)s` (and any `credential:%(key)s`), `'literal':%(key)s`,
//! `@` (always), `!` (never), `not`, `and`, `or` (and binds tighter), parentheses, and the
//! empty string (always).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::Error;
use crate::auth::identity::Identity;

/// What a rule is checked against: the keys `%(key)s` refers to. `project_id` is the owner
/// of the resource, `member_id` the caller's project when it is a member of a shared image.
#[derive(Debug, Default, Clone)]
pub struct Target {
    values: HashMap<&'static str, String>,
}

impl Target {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (an absent value never matches, as oslo.policy's "None").
    pub fn with(mut self, key: &'static str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.values.insert(key, value.to_owned());
        }
        self
    }

    /// A target whose owner is the caller's own project (`get_images`, creation checks).
    pub fn own_project(who: &Identity) -> Self {
        Target::new().with("project_id", who.project.as_deref())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Deepest nesting of parentheses and `not` a rule may have: the parser and the evaluator
/// recurse on it, so a policy file must not choose their stack depth.
pub const MAX_NESTING: usize = 64;
/// Most checks a rule may amount to with every `rule:` it names written out: a file whose
/// rules name each other several times per level would take exponential time per request.
pub const MAX_EXPANDED_CHECKS: u64 = 100_000;

/// One parsed check expression; [`fmt::Display`] writes it back in the rule language.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Always,
    Never,
    Role(String),
    Rule(String),
    /// `credential:%(key)s`: the caller's credential equals the target's value.
    Credential {
        credential: String,
        key: String,
    },
    /// `'literal':%(key)s`.
    Literal {
        value: String,
        key: String,
    },
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

/// Glance's default rules (glance/policies/*.py with enforce_new_defaults).
const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("default", ""),
    ("service_api", "role:service or role:admin"),
    // Images.
    (
        "add_image",
        "role:admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    (
        "get_image",
        "role:admin or (role:reader and (project_id:%(project_id)s or \
         project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s \
         or 'shared':%(visibility)s))",
    ),
    (
        "get_images",
        "role:admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "modify_image",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    ("publicize_image", "role:admin"),
    (
        "communitize_image",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "delete_image",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "download_image",
        "role:admin or (role:member and (project_id:%(project_id)s or \
         project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s \
         or 'shared':%(visibility)s))",
    ),
    (
        "upload_image",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    ("delete_image_location", "role:admin"),
    (
        "add_image_location",
        "rule:service_api or (role:member and project_id:%(project_id)s and \
         project_id:%(owner)s)",
    ),
    ("fetch_image_location", "rule:service_api"),
    (
        "get_image_location",
        "role:admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "deactivate",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "reactivate",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    ("copy_image", "role:admin"),
    // Members.
    (
        "add_member",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "delete_member",
        "role:admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "get_member",
        "role:admin or role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)",
    ),
    (
        "get_members",
        "role:admin or role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)",
    ),
    (
        "modify_member",
        "role:admin or (role:member and project_id:%(member_id)s)",
    ),
    // Tasks, cache, discovery, Glass's own admin APIs.
    ("tasks_api_access", "role:admin"),
    ("cache_image", "role:admin"),
    ("cache_list", "role:admin"),
    ("cache_delete", "role:admin"),
    ("cache_clean", "role:admin"),
    ("cache_prune", "role:admin"),
    ("stores_info_detail", "role:admin or role:service"),
    ("glass_admin", "role:admin"),
    // Metadata definitions.
    ("metadef_admin", "rule:context_is_admin"),
    (
        "get_metadef_namespace",
        "role:admin or (role:reader and (project_id:%(project_id)s or \
         'public':%(visibility)s))",
    ),
    (
        "get_metadef_namespaces",
        "role:admin or (role:reader and project_id:%(project_id)s)",
    ),
    ("modify_metadef", "rule:metadef_admin"),
];

/// The rules in force: Glance's defaults, each replaceable by the operator's file.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Check>,
}

impl Default for Policy {
    fn default() -> Self {
        let rules = DEFAULT_RULES
            .iter()
            .map(|(name, text)| {
                let check = parse(text).unwrap_or_else(|e| panic!("default rule {name}: {e}"));
                ((*name).to_owned(), check)
            })
            .collect();
        Policy { rules }
    }
}

impl Policy {
    /// The defaults with the rules of `path` replacing theirs: a JSON object or a flat YAML
    /// mapping (`"rule": "check"` per line, `#` comments), as oslo.policy files are.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("policy_file {}: {e}", path.display()))?;
        Policy::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The defaults with the rules of a policy file's text replacing theirs.
    pub fn from_text(text: &str) -> Result<Policy, String> {
        let overrides = parse_policy_file(text)?;
        let mut policy = Policy::default();
        for (name, text) in overrides {
            let check = parse(&text).map_err(|e| format!("rule {name:?}: {e}"))?;
            policy.rules.insert(name, check);
        }
        policy.check_references()?;
        Ok(policy)
    }

    /// Every `rule:` names a rule, no rule refers to itself (directly or not), and no rule
    /// expands to more than [`MAX_EXPANDED_CHECKS`] checks.
    fn check_references(&self) -> Result<(), String> {
        /// Checks in `check` with its rules written out; `path` holds the rules being expanded.
        fn size(
            check: &Check,
            policy: &Policy,
            sizes: &mut HashMap<String, u64>,
            path: &mut Vec<String>,
        ) -> Result<u64, String> {
            Ok(match check {
                Check::Rule(name) => {
                    if let Some(n) = sizes.get(name) {
                        return Ok(*n);
                    }
                    if path.contains(name) {
                        return Err(format!("rule:{name} refers to itself"));
                    }
                    let rule = policy
                        .rules
                        .get(name)
                        .ok_or_else(|| format!("rule:{name} names no rule"))?;
                    path.push(name.clone());
                    let n = size(rule, policy, sizes, path)?.saturating_add(1);
                    path.pop();
                    if n > MAX_EXPANDED_CHECKS {
                        return Err(format!(
                            "rule:{name} amounts to more than {MAX_EXPANDED_CHECKS} checks"
                        ));
                    }
                    sizes.insert(name.clone(), n);
                    n
                }
                Check::Not(c) => size(c, policy, sizes, path)?.saturating_add(1),
                Check::And(cs) | Check::Or(cs) => {
                    let mut n: u64 = 1;
                    for c in cs {
                        n = n.saturating_add(size(c, policy, sizes, path)?);
                    }
                    n
                }
                _ => 1,
            })
        }
        let mut sizes = HashMap::new();
        let mut names: Vec<&String> = self.rules.keys().collect();
        names.sort();
        for name in names {
            size(
                &Check::Rule(name.clone()),
                self,
                &mut sizes,
                &mut Vec::new(),
            )
            .map_err(|e| format!("rule {name:?}: {e}"))?;
        }
        Ok(())
    }

    /// Does rule `name` allow `who` to act on `target`? An unknown rule allows nothing.
    pub fn allows(&self, name: &str, who: &Identity, target: &Target) -> bool {
        self.rules
            .get(name)
            .is_some_and(|check| self.eval(check, who, target, 0))
    }

    /// 403 "You are not authorized to complete NAME action." unless rule `name` allows.
    pub fn enforce(&self, name: &str, who: &Identity, target: &Target) -> Result<(), Error> {
        if self.allows(name, who, target) {
            Ok(())
        } else {
            Err(forbidden(name))
        }
    }

    fn eval(&self, check: &Check, who: &Identity, target: &Target, depth: usize) -> bool {
        if depth > 32 {
            return false; // a rule that refers to itself
        }
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Role(role) => who.roles.iter().any(|r| r.eq_ignore_ascii_case(role)),
            Check::Rule(name) => self
                .rules
                .get(name)
                .is_some_and(|c| self.eval(c, who, target, depth + 1)),
            Check::Credential { credential, key } => {
                let mine = match credential.as_str() {
                    "project_id" | "tenant" | "tenant_id" => who.project.as_deref(),
                    "user_id" | "user" => who.user.as_deref(),
                    _ => None,
                };
                matches!((mine, target.get(key)), (Some(a), Some(b)) if a == b)
            }
            Check::Literal { value, key } => target.get(key) == Some(value.as_str()),
            Check::Not(c) => !self.eval(c, who, target, depth + 1),
            Check::And(cs) => cs.iter().all(|c| self.eval(c, who, target, depth + 1)),
            Check::Or(cs) => cs.iter().any(|c| self.eval(c, who, target, depth + 1)),
        }
    }
}

/// Glance's 403 for a refused policy.
pub fn forbidden(rule: &str) -> Error {
    Error::Forbidden(format!("You are not authorized to complete {rule} action."))
}

fn parse_policy_file(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("rule {k:?}: expected a string, found {other}")),
            })
            .collect();
    }
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line == "---" {
            continue;
        }
        let unquote = |s: &str| -> String {
            let s = s.trim();
            for q in ['"', '\''] {
                if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
                    return s[1..s.len() - 1].to_owned();
                }
            }
            s.to_owned()
        };
        // The key may be quoted and contain ':'; the separator is the first ": " or ':'
        // after it.
        let (key, value) = if let Some(rest) = line.strip_prefix('"') {
            let end = rest
                .find('"')
                .ok_or_else(|| format!("line {}: unterminated key", n + 1))?;
            let value = rest[end + 1..]
                .trim_start()
                .strip_prefix(':')
                .ok_or_else(|| format!("line {}: expected `\"rule\": \"check\"`", n + 1))?;
            (rest[..end].to_owned(), unquote(value))
        } else {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected `rule: check`", n + 1))?;
            (unquote(k), unquote(v))
        };
        rules.push((key, value));
    }
    Ok(rules)
}

/// Parses one check expression.
pub fn parse(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let check = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.at]));
    }
    Ok(check)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(String),
}

/// Splits on whitespace, then peels parentheses off each word's ends, as oslo.policy does
/// (so `%(key)s` keeps its own).
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let mut word = word;
        while let Some(rest) = word.strip_prefix('(') {
            tokens.push(Token::Open);
            word = rest;
        }
        let mut closes = 0;
        // No check ends with `)` (`%(key)s` ends with `s`): every trailing one closes a group.
        while let Some(rest) = word.strip_suffix(')') {
            closes += 1;
            word = rest;
        }
        if !word.is_empty() {
            let quotes = word.matches(['\'', '"']).count();
            if quotes % 2 == 1 {
                return Err(format!("unterminated quote in {word:?}"));
            }
            tokens.push(match word {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(word.to_owned()),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, closes));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Open parentheses and `not`s around the current token.
    depth: usize,
}

impl Parser {
    fn next_is(&self, token: &Token) -> bool {
        self.tokens.get(self.at) == Some(token)
    }

    fn or(&mut self) -> Result<Check, String> {
        let mut terms = vec![self.and()?];
        while self.next_is(&Token::Or) {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Check::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Check, String> {
        let mut terms = vec![self.unary()?];
        while self.next_is(&Token::And) {
            self.at += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Check::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Check, String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        if matches!(token, Some(Token::Not | Token::Open)) {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(format!(
                    "nested deeper than {MAX_NESTING} parentheses or `not`s"
                ));
            }
        }
        match token {
            Some(Token::Not) => {
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Check::Not(Box::new(inner)))
            }
            Some(Token::Open) => {
                let inner = self.or()?;
                if !self.next_is(&Token::Close) {
                    return Err("missing )".into());
                }
                self.at += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::Check(word)) => atom(&word),
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of rule".into()),
        }
    }
}

impl fmt::Display for Check {
    /// The rule language again: `and` and `or` groups in parentheses, literals in single
    /// quotes, so that parsing the text gives the same check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |f: &mut fmt::Formatter<'_>, cs: &[Check], op: &str| {
            f.write_str("(")?;
            for (i, c) in cs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Check::Always => f.write_str("@"),
            Check::Never => f.write_str("!"),
            Check::Role(role) => write!(f, "role:{role}"),
            Check::Rule(rule) => write!(f, "rule:{rule}"),
            Check::Credential { credential, key } => write!(f, "{credential}:%({key})s"),
            Check::Literal { value, key } => write!(f, "'{value}':%({key})s"),
            Check::Not(c) => write!(f, "not {c}"),
            Check::And(cs) => group(f, cs, "and"),
            Check::Or(cs) => group(f, cs, "or"),
        }
    }
}

fn atom(word: &str) -> Result<Check, String> {
    match word {
        "@" => return Ok(Check::Always),
        "!" => return Ok(Check::Never),
        _ => {}
    }
    let (kind, match_) = word
        .split_once(':')
        .ok_or_else(|| format!("{word:?} is not KIND:MATCH"))?;
    let key_of = |m: &str| -> Result<String, String> {
        m.strip_prefix("%(")
            .and_then(|m| m.strip_suffix(")s"))
            .map(str::to_owned)
            .ok_or_else(|| format!("{word:?}: expected %(key)s"))
    };
    match kind {
        "role" => Ok(Check::Role(match_.to_owned())),
        "rule" => Ok(Check::Rule(match_.to_owned())),
        "http" | "https" => Err(format!("{word:?}: remote checks are not supported")),
        quoted if quoted.starts_with(['\'', '"']) => {
            // The quote is one byte; the literal ends with the same quote, or it is no literal.
            let quote = &quoted[..1];
            let value = quoted[1..]
                .strip_suffix(quote)
                .ok_or_else(|| format!("{word:?}: the literal does not end with {quote}"))?;
            Ok(Check::Literal {
                value: value.to_owned(),
                key: key_of(match_)?,
            })
        }
        credential => Ok(Check::Credential {
            credential: credential.to_owned(),
            key: key_of(match_)?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(project: &str, roles: &[&str]) -> Identity {
        Identity {
            project: Some(project.into()),
            user: Some("u".into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn image(owner: &str, visibility: &str, member: Option<&str>) -> Target {
        Target::new()
            .with("project_id", Some(owner))
            .with("owner", Some(owner))
            .with("visibility", Some(visibility))
            .with("member_id", member)
    }

    #[test]
    fn defaults_follow_glance() {
        let p = Policy::default();
        let member = who("p1", &["member", "reader"]);
        let reader = who("p1", &["reader"]);
        let other = who("p2", &["member", "reader"]);
        let admin = who("p3", &["admin", "member", "reader"]);
        let own = image("p1", "private", None);
        assert!(p.allows("modify_image", &member, &own));
        assert!(!p.allows("modify_image", &reader, &own));
        assert!(p.allows("get_image", &reader, &own));
        assert!(!p.allows("download_image", &reader, &own));
        assert!(!p.allows("get_image", &other, &own));
        assert!(p.allows("get_image", &admin, &own));
        assert!(!p.allows("publicize_image", &member, &own));
        assert!(p.allows("communitize_image", &member, &own));
        let shared = image("p1", "shared", Some("p2"));
        assert!(p.allows("modify_member", &other, &shared));
        assert!(!p.allows("modify_member", &member, &image("p1", "shared", None)));
        assert!(p.allows("download_image", &other, &shared));
        assert!(!p.allows("delete_image", &other, &shared));
        // `and` binds tighter than `or`.
        assert!(p.allows("get_members", &admin, &Target::new()));
        assert!(!p.allows("no_such_rule", &admin, &own));
    }

    #[test]
    fn parser_handles_the_language() {
        assert_eq!(parse("").unwrap(), Check::Always);
        assert_eq!(parse("!").unwrap(), Check::Never);
        assert!(matches!(parse("not role:a").unwrap(), Check::Not(_)));
        assert!(
            matches!(parse("role:a or role:b and role:c").unwrap(), Check::Or(v) if v.len() == 2)
        );
        assert!(parse("role:a and").is_err());
        assert!(parse("(role:a").is_err());
        assert!(parse("rolea").is_err());
        assert!(parse("http://x").is_err());
        let lit = parse("'public':%(visibility)s").unwrap();
        assert_eq!(
            lit,
            Check::Literal {
                value: "public".into(),
                key: "visibility".into()
            }
        );
    }

    /// Found while writing the fuzz target: nesting was unbounded, so a policy file of
    /// 100 000 `(` or `not` overflowed the parser's stack (an abort at start-up).
    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}role:a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        let nots = format!("{}role:a", "not ".repeat(100_000));
        assert!(parse(&nots).unwrap_err().contains("nested deeper"));
        let ok = format!(
            "{}role:a{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(parse(&ok).unwrap(), Check::Role("a".into()));
    }

    /// A rule naming itself, and rules that name the next one many times per level (2^40
    /// checks per request), are refused when the file is read.
    #[test]
    fn cycles_and_exponential_rules_are_refused() {
        let err = Policy::from_text(r#"{"a": "rule:b", "b": "role:x or rule:a"}"#).unwrap_err();
        assert!(err.contains("refers to itself"), "{err}");
        let mut rules = serde_json::Map::new();
        for level in 0..40 {
            let next = format!("rule:r{}", level + 1);
            rules.insert(format!("r{level}"), format!("{next} or {next}").into());
        }
        rules.insert("r40".into(), "role:x".into());
        let text = serde_json::Value::Object(rules).to_string();
        let err = Policy::from_text(&text).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    /// Found by glass-fuzz (policy target): a literal that opened with a quote and ended
    /// with a multi-byte character made the parser slice inside it (a panic), and one that
    /// ended with another character lost it (the rule rendered back did not parse).
    #[test]
    fn literals_need_their_closing_quote() {
        for text in [
            "\"rolé:%(k\")s",
            "'public'é:%(visibility)s",
            "'a'b:%(k)s",
            "'x\":%(k)s",
        ] {
            assert!(
                parse(text).unwrap_err().contains("does not end with"),
                "{text}"
            );
        }
        let check = parse("\"a'b'\":%(k)s").unwrap();
        assert_eq!(
            check,
            Check::Literal {
                value: "a'b'".into(),
                key: "k".into()
            }
        );
        assert_eq!(parse(&check.to_string()).unwrap(), check);
    }

    #[test]
    fn rules_render_back_to_themselves() {
        for (_, text) in DEFAULT_RULES {
            let check = parse(text).unwrap();
            assert_eq!(parse(&check.to_string()).unwrap(), check, "{text}");
        }
        let check = parse(r#"not ("a'b'":%(k)s or @) and !"#).unwrap();
        assert_eq!(parse(&check.to_string()).unwrap(), check);
    }

    #[test]
    fn overrides_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("policy.yaml");
        std::fs::write(
            &yaml,
            "# readers may not download, members neither\n\"download_image\": \"role:admin\"\n\
             publicize_image: 'role:admin or role:publisher'\n",
        )
        .unwrap();
        let p = Policy::load(&yaml).unwrap();
        let member = who("p1", &["member", "reader"]);
        assert!(!p.allows("download_image", &member, &image("p1", "private", None)));
        assert!(p.allows(
            "publicize_image",
            &who("p1", &["publisher"]),
            &image("p1", "private", None)
        ));
        let json = dir.path().join("policy.json");
        std::fs::write(&json, r#"{"modify_image": "rule:nope"}"#).unwrap();
        assert!(Policy::load(&json).unwrap_err().contains("nope"));
        std::fs::write(&json, r#"{"modify_image": "role:a and"}"#).unwrap();
        assert!(Policy::load(&json).unwrap_err().contains("modify_image"));
    }
}
