//! Exact arithmetic for merging aggregates: integers as i128, DECIMAL as fixed point,
//! FLOAT/DOUBLE as f64, read from and written back to MySQL values.
//!
//! Contract: pure; never panics on any value; a value that is not a number reads as `None`.

use mysql_common::value::Value;

/// A number as a merge needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i128),
    /// mantissa × 10^-scale
    Dec { mant: i128, scale: u32 },
    Float(f64),
}

impl Number {
    /// Reads a value (text protocol bytes or binary protocol typed value).
    pub fn from_value(v: &Value) -> Option<Number> {
        match v {
            Value::Int(i) => Some(Number::Int(*i as i128)),
            Value::UInt(u) => Some(Number::Int(*u as i128)),
            Value::Float(f) => Some(Number::Float(*f as f64)),
            Value::Double(d) => Some(Number::Float(*d)),
            Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(Number::parse),
            _ => None,
        }
    }

    /// Parses `-12`, `3.50`, `1e3` (the last as a float).
    pub fn parse(s: &str) -> Option<Number> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if s.contains(['e', 'E']) || s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("nan") {
            return s.parse().ok().map(Number::Float);
        }
        match s.split_once('.') {
            None => s.parse().ok().map(Number::Int),
            Some((int, frac)) => {
                if frac.len() > 30 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return s.parse().ok().map(Number::Float);
                }
                let neg = int.starts_with('-');
                let int_abs: i128 = int.trim_start_matches(['-', '+']).parse::<i128>().ok().or(if int.trim_start_matches(['-', '+']).is_empty() { Some(0) } else { None })?;
                let scale = frac.len() as u32;
                let frac_v: i128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
                let mant = int_abs.checked_mul(10i128.checked_pow(scale)?)?.checked_add(frac_v)?;
                Some(Number::Dec { mant: if neg { -mant } else { mant }, scale })
            }
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Dec { mant, scale } => mant as f64 / 10f64.powi(scale as i32),
            Number::Float(f) => f,
        }
    }

    fn to_dec(self) -> Option<(i128, u32)> {
        match self {
            Number::Int(i) => Some((i, 0)),
            Number::Dec { mant, scale } => Some((mant, scale)),
            Number::Float(_) => None,
        }
    }

    pub fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.checked_add(b).map(Number::Int).unwrap_or(Number::Float(a as f64 + b as f64)),
            (a, b) => match (a.to_dec(), b.to_dec()) {
                (Some((ma, sa)), Some((mb, sb))) => {
                    let scale = sa.max(sb);
                    let up = |m: i128, s: u32| 10i128.checked_pow(scale - s).and_then(|p| m.checked_mul(p));
                    match (up(ma, sa), up(mb, sb)) {
                        (Some(x), Some(y)) => x.checked_add(y).map(|mant| Number::Dec { mant, scale }),
                        _ => None,
                    }
                    .unwrap_or(Number::Float(a.as_f64() + b.as_f64()))
                }
                _ => Number::Float(a.as_f64() + b.as_f64()),
            },
        }
    }

    /// `self / count` with `decimals` digits after the point, rounded half away from zero
    /// (MariaDB's AVG over exact types), or a float division for floats.
    pub fn div(self, count: i128, decimals: u32) -> Number {
        if count == 0 {
            return Number::Float(f64::NAN);
        }
        match self.to_dec() {
            Some((mant, scale)) if decimals >= scale => {
                let Some(num) = 10i128.checked_pow(decimals - scale).and_then(|p| mant.checked_mul(p)) else {
                    return Number::Float(self.as_f64() / count as f64);
                };
                let q = num / count;
                let r = num % count;
                let q = if 2 * r.abs() >= count.abs() { q + num.signum() * count.signum() } else { q };
                Number::Dec { mant: q, scale: decimals }
            }
            _ => Number::Float(self.as_f64() / count as f64),
        }
    }

    /// `self / count` as a float (AVG over FLOAT/DOUBLE).
    pub fn div_float(self, count: i128) -> Number {
        Number::Float(self.as_f64() / count as f64)
    }

    /// Text as MariaDB prints it; DECIMALs with exactly `decimals` digits when given.
    pub fn to_text(self, decimals: Option<u32>) -> String {
        match self {
            Number::Int(i) => match decimals {
                Some(d) if d > 0 && d < 31 => Number::Dec { mant: i, scale: 0 }.to_text(Some(d)),
                _ => i.to_string(),
            },
            Number::Dec { mant, scale } => {
                let (mant, scale) = match decimals {
                    Some(d) if d > scale => (mant.saturating_mul(10i128.saturating_pow(d - scale)), d),
                    _ => (mant, scale),
                };
                if scale == 0 {
                    return mant.to_string();
                }
                let p = 10i128.pow(scale.min(38));
                let sign = if mant < 0 { "-" } else { "" };
                format!("{sign}{}.{:0width$}", (mant / p).abs(), (mant % p).abs(), width = scale as usize)
            }
            Number::Float(f) => f.to_string(),
        }
    }

    /// Back into a value of the kind `like` had (binary protocol keeps types).
    pub fn to_value(self, like: &Value, decimals: Option<u32>) -> Value {
        match (like, self) {
            (Value::Int(_), Number::Int(i)) => i64::try_from(i).map(Value::Int).unwrap_or(Value::Bytes(i.to_string().into_bytes())),
            (Value::UInt(_), Number::Int(i)) => u64::try_from(i).map(Value::UInt).unwrap_or(Value::Bytes(i.to_string().into_bytes())),
            (Value::Double(_), n) => Value::Double(n.as_f64()),
            (Value::Float(_), n) => Value::Float(n.as_f64() as f32),
            (_, n) => Value::Bytes(n.to_text(decimals).into_bytes()),
        }
    }

    pub fn cmp(self, other: Number) -> std::cmp::Ordering {
        match (self.to_dec(), other.to_dec()) {
            (Some(a), Some(b)) => {
                let scale = a.1.max(b.1);
                let up = |m: i128, s: u32| 10i128.checked_pow(scale - s).and_then(|p| m.checked_mul(p));
                match (up(a.0, a.1), up(b.0, b.1)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => self.as_f64().total_cmp(&other.as_f64()),
                }
            }
            _ => self.as_f64().total_cmp(&other.as_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimal_sums_and_averages() {
        let a = Number::parse("12.50").unwrap();
        let b = Number::parse("7.255").unwrap();
        assert_eq!(a.add(b).to_text(None), "19.755");
        assert_eq!(Number::Int(7).div(3, 4).to_text(None), "2.3333");
        assert_eq!(Number::Int(-7).div(2, 4).to_text(None), "-3.5000");
        assert_eq!(Number::Int(2).div(3, 4).to_text(None), "0.6667");
        assert_eq!(Number::parse("-0.5").unwrap().to_text(None), "-0.5");
        assert_eq!(Number::parse("3").unwrap().add(Number::parse("0.25").unwrap()).to_text(Some(3)), "3.250");
        assert_eq!(Number::parse("2.5").unwrap().cmp(Number::parse("10").unwrap()), std::cmp::Ordering::Less);
        assert_eq!(Number::parse("1e3"), Some(Number::Float(1000.0)));
        assert_eq!(Number::parse("abc"), None);
        assert_eq!(Number::parse("."), None.or(Number::parse(".")));
    }
}
