//! The small value types a link carries: the methods it grants and how the
//! browser presents the file.

use std::fmt;
use std::ops::BitOr;

/// An HTTP method a link can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `PUT` (reserved for upload links).
    Put,
}

impl Method {
    /// Maps an HTTP method name (case-sensitive, as on the wire).
    pub fn from_name(name: &str) -> Option<Method> {
        match name {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            "PUT" => Some(Method::Put),
            _ => None,
        }
    }

    /// The name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Method::Get => 1,
            Method::Head => 2,
            Method::Put => 4,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of methods a link grants. The default is [`Methods::READ`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Methods(u8);

impl Methods {
    /// `GET` only.
    pub const GET: Methods = Methods(1);
    /// `HEAD` only.
    pub const HEAD: Methods = Methods(2);
    /// `PUT` only (for upload links).
    pub const PUT: Methods = Methods(4);
    /// `GET` and `HEAD`: what a download link grants.
    pub const READ: Methods = Methods(3);
    const ALL_BITS: u8 = 7;

    /// The wire form.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Reads the wire form: a non-empty set of known methods.
    pub fn from_bits(bits: u8) -> Option<Methods> {
        (bits != 0 && bits & !Self::ALL_BITS == 0).then_some(Methods(bits))
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    /// The methods in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Method> {
        [Method::Get, Method::Head, Method::Put]
            .into_iter()
            .filter(move |m| self.contains(*m))
    }
}

impl Default for Methods {
    fn default() -> Self {
        Methods::READ
    }
}

/// The set of one method.
impl From<Method> for Methods {
    fn from(method: Method) -> Methods {
        Methods(method.bit())
    }
}

impl BitOr for Methods {
    type Output = Methods;
    fn bitor(self, rhs: Methods) -> Methods {
        Methods(self.0 | rhs.0)
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How the browser should present the file (RFC 6266).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DispositionType {
    /// Show in the browser.
    Inline = 0,
    /// Download as a file.
    Attachment = 1,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_from_names_and_back() {
        for m in [Method::Get, Method::Head, Method::Put] {
            assert_eq!(Method::from_name(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
            let one = Methods::from(m);
            assert!(one.contains(m));
            assert_eq!(one.iter().collect::<Vec<_>>(), [m]);
        }
        assert_eq!(
            Methods::from(Method::Get) | Method::Head.into(),
            Methods::READ
        );
        assert_eq!(Method::from_name("get"), None, "names are case-sensitive");
    }
}
