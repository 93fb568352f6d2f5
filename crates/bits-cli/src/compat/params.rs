//! PowerShell's parameter binding, for the arguments a POSIX shell hands a
//! cmdlet name.
//!
//! The rules, as PowerShell applies them to a compiled cmdlet:
//! - a token `-Name` names a parameter; names are case-insensitive and may
//!   be shortened to any prefix that names one parameter (an ambiguous
//!   prefix is an error that lists the candidates); an alias must be given
//!   whole;
//! - `-Name value`, or `-Name:value` in one token;
//! - a switch takes no value; `-Switch:false` (or `:$false`) turns it off;
//! - an array takes a comma list (`a,b,c`), also split over tokens the
//!   shell separated (`a, b, c`) and inside `@( … )`;
//! - tokens that name no parameter bind, in order, to the positional
//!   parameters not yet bound.
//!
//! Pure: no I/O, so every rule is unit tested.

use std::collections::BTreeMap;

/// How a parameter takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Present or not (`-Asynchronous`).
    Switch,
    /// One value.
    Value,
    /// One or more values, comma-separated.
    Array,
}

/// One parameter of a cmdlet.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The name as the documentation spells it.
    pub name: &'static str,
    /// Documented aliases (whole words only).
    pub aliases: &'static [&'static str],
    /// How it takes its value.
    pub kind: Kind,
    /// Its position among the unnamed arguments, if it has one.
    pub position: Option<u8>,
    /// `None`: bits implements it. `Some(why)`: refused, with this reason.
    pub unsupported: Option<&'static str>,
}

impl Param {
    /// A parameter bits implements.
    pub const fn new(name: &'static str, kind: Kind) -> Param {
        Param {
            name,
            aliases: &[],
            kind,
            position: None,
            unsupported: None,
        }
    }

    /// With aliases.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Param {
        self.aliases = aliases;
        self
    }

    /// At a position.
    pub const fn at(mut self, position: u8) -> Param {
        self.position = Some(position);
        self
    }

    /// A parameter of the cmdlet that bits refuses, saying why.
    pub const fn unsupported(name: &'static str, kind: Kind, why: &'static str) -> Param {
        Param {
            name,
            aliases: &[],
            kind,
            position: None,
            unsupported: Some(why),
        }
    }
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A switch's state.
    Switch(bool),
    /// One value.
    One(String),
    /// An array's items.
    Many(Vec<String>),
}

/// The result of binding: each parameter given, by its documented name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bound {
    values: BTreeMap<&'static str, Value>,
    /// For each parameter, the indices of the tokens it took (to forward
    /// the others elsewhere).
    tokens: BTreeMap<&'static str, Vec<usize>>,
}

impl Bound {
    /// Whether the switch is on.
    pub fn switch(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Switch(true)))
    }

    /// A single value.
    pub fn one(&self, name: &str) -> Option<&str> {
        match self.values.get(name)? {
            Value::One(v) => Some(v),
            Value::Many(v) => v.first().map(String::as_str),
            Value::Switch(_) => None,
        }
    }

    /// An array's items (a single value is an array of one).
    pub fn many(&self, name: &str) -> Option<&[String]> {
        match self.values.get(name)? {
            Value::Many(v) => Some(v),
            Value::One(v) => Some(std::slice::from_ref(v)),
            Value::Switch(_) => None,
        }
    }

    /// Whether the parameter was given at all.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The tokens that did not bind `name`, in order.
    pub fn tokens_without<'a>(&self, name: &str, args: &'a [String]) -> Vec<&'a String> {
        let taken = self.tokens.get(name).cloned().unwrap_or_default();
        args.iter()
            .enumerate()
            .filter(|(i, _)| !taken.contains(i))
            .map(|(_, a)| a)
            .collect()
    }
}

/// What is wrong with a cmdlet's arguments; the messages follow
/// PowerShell's, which people search for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// No parameter has this name or prefix.
    #[error("a parameter cannot be found that matches parameter name '{0}'")]
    Unknown(String),
    /// The prefix names several.
    #[error("parameter cannot be processed because the parameter name '{given}' is ambiguous; possible matches include: {}", candidates.iter().map(|c| format!("-{c}")).collect::<Vec<_>>().join(" "))]
    Ambiguous {
        /// As typed.
        given: String,
        /// The parameters it could be.
        candidates: Vec<&'static str>,
    },
    /// Given twice.
    #[error("cannot bind parameter because parameter '{0}' is specified more than once")]
    Repeated(&'static str),
    /// A value parameter at the end, or followed by another parameter.
    #[error("missing an argument for parameter '{0}'; give a value after -{0}")]
    MissingValue(&'static str),
    /// A switch given a value that is not true or false.
    #[error("-{name}:{value}: a switch takes $true or $false")]
    BadSwitch {
        /// The switch.
        name: &'static str,
        /// The value given.
        value: String,
    },
    /// An unnamed token with no positional parameter left for it.
    #[error("a positional parameter cannot be found that accepts argument '{0}'")]
    NoPosition(String),
    /// A parameter of the cmdlet that bits does not implement.
    #[error("-{name} is not supported by bits: {why}")]
    Unsupported {
        /// The parameter.
        name: &'static str,
        /// Why.
        why: &'static str,
    },
}

/// Binds `args` to `params`.
pub fn bind(params: &[Param], args: &[String]) -> Result<Bound, BindError> {
    let mut bound = Bound::default();
    let mut positional: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let token = &args[i];
        let Some(spelled) = parameter_token(token) else {
            // `a, b c`: an unnamed array split by the shell is one value.
            let mut text = token.clone();
            i += 1;
            while text.trim_end().ends_with(',') && i < args.len() {
                text.push_str(&args[i]);
                i += 1;
            }
            positional.push((i - 1, text));
            continue;
        };
        let (name, inline) = match spelled.split_once(':') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (spelled, None),
        };
        let param = find(params, name)?;
        if let Some(why) = param.unsupported {
            return Err(BindError::Unsupported {
                name: param.name,
                why,
            });
        }
        if bound.values.contains_key(param.name) {
            return Err(BindError::Repeated(param.name));
        }
        let mut taken = vec![i];
        i += 1;
        let value = match param.kind {
            Kind::Switch => Value::Switch(match inline {
                None => true,
                Some(v) => switch_value(param.name, &v)?,
            }),
            Kind::Value | Kind::Array => {
                let mut text = match inline {
                    Some(v) if !v.is_empty() => v,
                    _ => {
                        let next = args
                            .get(i)
                            .filter(|t| parameter_token(t).is_none())
                            .ok_or(BindError::MissingValue(param.name))?;
                        taken.push(i);
                        i += 1;
                        next.clone()
                    }
                };
                if param.kind == Kind::Array {
                    // `a, b, c` arrives as `a,` `b,` `c`; `@(a,` … `c)` too.
                    while text.trim_end().ends_with(',') && i < args.len() {
                        text.push_str(&args[i]);
                        taken.push(i);
                        i += 1;
                    }
                    Value::Many(split_array(&text))
                } else {
                    Value::One(text)
                }
            }
        };
        bound.values.insert(param.name, value);
        bound.tokens.insert(param.name, taken);
    }

    // Unnamed tokens fill the positional parameters not named, in order.
    let mut slots: Vec<&Param> = params
        .iter()
        .filter(|p| p.position.is_some() && !bound.values.contains_key(p.name))
        .collect();
    slots.sort_by_key(|p| p.position);
    let mut slots = slots.into_iter();
    for (index, token) in positional {
        let param = slots
            .next()
            .ok_or_else(|| BindError::NoPosition(token.clone()))?;
        let value = match param.kind {
            Kind::Array => Value::Many(split_array(&token)),
            Kind::Value => Value::One(token),
            Kind::Switch => return Err(BindError::NoPosition(token)),
        };
        bound.values.insert(param.name, value);
        bound.tokens.insert(param.name, vec![index]);
    }
    Ok(bound)
}

/// `-Name` or `-Name:value` without the dash; `None` for a value (`-`,
/// `-5`, `file`, `C:\x`).
fn parameter_token(token: &str) -> Option<&str> {
    let rest = token.strip_prefix('-')?;
    rest.chars()
        .next()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|_| rest)
}

/// The parameter `spelled` names: a whole name or alias, else the one
/// name it is a prefix of.
fn find<'p>(params: &'p [Param], spelled: &str) -> Result<&'p Param, BindError> {
    let exact = params.iter().find(|p| {
        p.name.eq_ignore_ascii_case(spelled)
            || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(spelled))
    });
    if let Some(p) = exact {
        return Ok(p);
    }
    let lower = spelled.to_ascii_lowercase();
    let matches: Vec<&Param> = params
        .iter()
        .filter(|p| p.name.to_ascii_lowercase().starts_with(&lower))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(BindError::Unknown(spelled.to_string())),
        many => Err(BindError::Ambiguous {
            given: spelled.to_string(),
            candidates: many.iter().map(|p| p.name).collect(),
        }),
    }
}

fn switch_value(name: &'static str, text: &str) -> Result<bool, BindError> {
    match text.trim_start_matches('$').to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(BindError::BadSwitch {
            name,
            value: text.to_string(),
        }),
    }
}

/// `a,b, c` and `@(a, b)` into items; quotes a PowerShell user kept
/// (`'a','b'`) are dropped.
pub fn split_array(text: &str) -> Vec<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("@(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(text);
    // Commas inside quotes belong to the item (`'Accept: a, b'`).
    let mut items = Vec::new();
    let mut item = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => items.push(std::mem::take(&mut item)),
            _ => {}
        }
        if c != ',' || quote.is_some() {
            item.push(c);
        }
    }
    items.push(item);
    items
        .iter()
        .map(|item| unquote(item.trim()).to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

fn unquote(item: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = item.strip_prefix(q).and_then(|i| i.strip_suffix(q)) {
            return inner;
        }
    }
    item
}

#[cfg(test)]
mod tests;
