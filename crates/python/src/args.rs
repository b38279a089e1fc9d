//! Python arguments into the signer's types: durations, instants, methods,
//! addresses. A value of the wrong type is a `TypeError`; a value of the
//! right type that makes no sense is a `mediagate.LinkError` with a code.

use std::net::IpAddr;

use ipnet::IpNet;
use mediagate_signer::limits::MAX_TIME;
use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{Method, Methods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use crate::errors;

/// A duration: seconds (`int` or `float`), a `datetime.timedelta`, or a
/// string as the command line writes them (`"90s"`, `"10m"`, `"2h 30m"`).
pub(crate) fn duration(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let seconds = if value.is_instance_of::<PyBool>() {
        None
    } else if let Ok(s) = value.cast::<PyString>() {
        let text = s.to_cow()?;
        let parsed = humantime::parse_duration(text.trim()).map_err(|_| {
            errors::argument(
                "bad_duration",
                format!("{name}: not a duration (write it as 90s, 10m, 2h 30m or 7d)"),
            )
        })?;
        return Duration::try_from(parsed)
            .map_err(|_| errors::argument("bad_duration", format!("{name}: too long")));
    } else if value.is_instance_of::<PyInt>() {
        let s: i64 = value
            .extract()
            .map_err(|_| errors::argument("bad_duration", format!("{name}: too long")))?;
        return Ok(Duration::seconds(s));
    } else if value.is_instance_of::<PyFloat>() {
        Some(value.extract::<f64>()?)
    } else if value.hasattr("total_seconds")? {
        Some(value.call_method0("total_seconds")?.extract::<f64>()?)
    } else {
        None
    };
    match seconds {
        Some(s) if s.is_finite() && s.abs() < 1e15 => Ok(Duration::seconds_f64(s)),
        Some(_) => Err(errors::argument(
            "bad_duration",
            format!("{name}: not a finite duration"),
        )),
        None => Err(PyTypeError::new_err(format!(
            "{name} must be seconds (int or float), a datetime.timedelta, \
             or a string such as '10m'"
        ))),
    }
}

/// An instant: a timezone-aware `datetime.datetime`, or Unix seconds. A
/// naive datetime is refused: whether it meant UTC or local time cannot be
/// known, and a guess moves expiries by hours.
pub(crate) fn instant(name: &str, value: &Bound<'_, PyAny>) -> PyResult<OffsetDateTime> {
    let seconds: f64 = if value.is_instance_of::<PyBool>() {
        return Err(instant_type(name));
    } else if value.is_instance_of::<PyInt>() {
        let s: i64 = value.extract().map_err(|_| out_of_range(name))?;
        return unix(name, s);
    } else if value.is_instance_of::<PyFloat>() {
        value.extract()?
    } else if value.hasattr("utcoffset")? && value.hasattr("timestamp")? {
        if value.call_method0("utcoffset")?.is_none() {
            return Err(errors::argument(
                "naive_datetime",
                format!(
                    "{name}: a datetime without a timezone; \
                     use datetime.now(timezone.utc) or django.utils.timezone.now()"
                ),
            ));
        }
        value.call_method0("timestamp")?.extract()?
    } else {
        return Err(instant_type(name));
    };
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return Err(out_of_range(name));
    }
    unix(name, seconds.floor() as i64)
}

/// Unix seconds within the format's range (1970 to 9999).
fn unix(name: &str, seconds: i64) -> PyResult<OffsetDateTime> {
    if !(0..=MAX_TIME as i64).contains(&seconds) {
        return Err(out_of_range(name));
    }
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| out_of_range(name))
}

fn instant_type(name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{name} must be a timezone-aware datetime.datetime or Unix seconds"
    ))
}

fn out_of_range(name: &str) -> PyErr {
    errors::argument(
        "bad_time",
        format!("{name}: outside the years 1970 to 9999"),
    )
}

static DATETIME: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

/// `at` as a `datetime.datetime` in UTC.
pub(crate) fn to_datetime<'py>(py: Python<'py>, at: OffsetDateTime) -> PyResult<Bound<'py, PyAny>> {
    let (class, utc) = DATETIME.get_or_try_init(py, || -> PyResult<_> {
        let module = PyModule::import(py, "datetime")?;
        let utc = module.getattr("timezone")?.getattr("utc")?;
        Ok((module.getattr("datetime")?.unbind(), utc.unbind()))
    })?;
    class
        .bind(py)
        .call_method1("fromtimestamp", (at.unix_timestamp(), utc.bind(py)))
}

/// The methods a link grants: `"GET"`, `"GET,HEAD"`, or an iterable of
/// names.
pub(crate) fn methods(value: &Bound<'_, PyAny>) -> PyResult<Methods> {
    let mut bits = 0u8;
    let mut add = |name: &str| -> PyResult<()> {
        let m = Method::from_name(name.trim()).ok_or_else(|| {
            errors::argument(
                "bad_method",
                "methods: a link grants GET, HEAD and PUT only".to_owned(),
            )
        })?;
        bits |= Methods::from(m).bits();
        Ok(())
    };
    if let Ok(s) = value.cast::<PyString>() {
        for name in s.to_cow()?.split(',').filter(|n| !n.trim().is_empty()) {
            add(name)?;
        }
    } else {
        let items = value.try_iter().map_err(|_| {
            PyTypeError::new_err("methods must be a string or an iterable of strings")
        })?;
        for item in items {
            let item = item?;
            let s = item
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("methods must be strings"))?;
            add(&s.to_cow()?)?;
        }
    }
    Methods::from_bits(bits).ok_or_else(|| {
        errors::error(
            errors::Class::Sign,
            "no_methods",
            "a link must grant at least one method".to_owned(),
            None,
        )
    })
}

/// A SHA-256 digest: 32 bytes, or 64 hex characters.
pub(crate) fn sha256(value: &Bound<'_, PyAny>) -> PyResult<[u8; 32]> {
    let bad = || {
        errors::argument(
            "bad_sha256",
            "sha256: a SHA-256 digest is 32 bytes or 64 hex characters",
        )
    };
    if let Ok(b) = value.cast::<pyo3::types::PyBytes>() {
        return b.as_bytes().try_into().map_err(|_| bad());
    }
    let s = value
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("sha256 must be bytes or a hex string"))?;
    let s = s.to_cow()?;
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// One method of a request (any token; only GET, HEAD and PUT can be
/// granted).
pub(crate) fn method(name: &str) -> PyResult<Method> {
    Method::from_name(name).ok_or_else(|| {
        errors::refusal(
            "method_not_allowed",
            405,
            "links grant GET, HEAD and PUT only",
        )
    })
}

/// A client address or network (`"203.0.113.7"`, `"203.0.113.0/24"`, or
/// an `ipaddress` object).
pub(crate) fn net(value: &Bound<'_, PyAny>) -> PyResult<IpNet> {
    let text = value.str()?;
    let text = text.to_cow()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    text.parse::<IpNet>().map_err(|_| {
        errors::argument(
            "bad_ip",
            "client_ip: not an IP address or network such as 203.0.113.0/24".to_owned(),
        )
    })
}

/// A client address (`"203.0.113.7"`, or an `ipaddress` object).
pub(crate) fn ip(value: &Bound<'_, PyAny>) -> PyResult<IpAddr> {
    let text = value.str()?;
    text.to_cow()?
        .parse::<IpAddr>()
        .map_err(|_| errors::argument("bad_ip", "client_ip: not an IP address".to_owned()))
}
