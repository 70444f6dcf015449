//! ksqlDB's DECIMAL: fixed-point numbers as an `i128` unscaled value and a
//! scale, with ksqlDB's typing rules (literal types, result precision and
//! scale of arithmetic, implicit widening) and Java `BigDecimal`'s rounding.
//!
//! An `i128` holds every value of up to 38 digits, so columns are declared
//! with at most 38; arithmetic types may say more (ksqlDB's rules give
//! `DECIMAL(41, 4)` for a product), and a value that does not fit 128 bits
//! then yields NULL like any other failed expression.

use std::cmp::Ordering;

/// The largest precision a declared DECIMAL column may have.
pub const MAX_PRECISION: u32 = 38;

/// A decimal value: `unscaled / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dec {
    pub unscaled: i128,
    pub scale: u32,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Dec {
    pub fn new(unscaled: i128, scale: u32) -> Dec {
        Dec { unscaled, scale }
    }

    /// An integer as a decimal of scale 0.
    pub fn from_int(v: i64) -> Dec {
        Dec::new(i128::from(v), 0)
    }

    /// Parses `-12.50` (scale 2) or `1.5E3`; `None` when it is not a
    /// number or does not fit.
    pub fn parse(text: &str) -> Option<Dec> {
        let t = text.trim();
        let (mant, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
            None => (t, 0),
        };
        let (neg, digits) = match mant.as_bytes().first()? {
            b'-' => (true, &mant[1..]),
            b'+' => (false, &mant[1..]),
            _ => (false, mant),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut v: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let mut scale = frac.len() as i32 - exp;
        if scale < 0 {
            v = v.checked_mul(pow10(scale.unsigned_abs())?)?;
            scale = 0;
        }
        Some(Dec::new(if neg { -v } else { v }, scale as u32))
    }

    /// Digits of the unscaled value (at least 1).
    fn digits(&self) -> u32 {
        let mut n = self.unscaled.unsigned_abs();
        let mut d = 1;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    }

    /// ksqlDB's type of a literal (`DecimalUtil.fromValue`): the digits and
    /// the scale, with `scale + 1` digits for values between -1 and 1.
    pub fn literal_type(&self) -> (u32, u32) {
        let one = pow10(self.scale).unwrap_or(i128::MAX);
        if self.unscaled.abs() < one {
            (self.scale + 1, self.scale)
        } else {
            (self.digits(), self.scale)
        }
    }

    /// The value at another scale, rounding half up (away from zero) when
    /// digits are dropped, as `BigDecimal.setScale(s, HALF_UP)`.
    pub fn rescale(&self, scale: u32) -> Option<Dec> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(*self),
            Ordering::Greater => Some(Dec::new(
                self.unscaled.checked_mul(pow10(scale - self.scale)?)?,
                scale,
            )),
            Ordering::Less => {
                let Some(d) = pow10(self.scale - scale) else {
                    return Some(Dec::new(0, scale));
                };
                let (q, r) = (self.unscaled / d, self.unscaled % d);
                let q = if r.unsigned_abs() * 2 >= d.unsigned_abs() {
                    q + self.unscaled.signum()
                } else {
                    q
                };
                Some(Dec::new(q, scale))
            }
        }
    }

    /// The value at another scale only when no digit is lost.
    pub fn rescale_exact(&self, scale: u32) -> Option<Dec> {
        let r = self.rescale(scale)?;
        (r.rescale(self.scale)? == *self).then_some(r)
    }

    /// Whether the value fits `DECIMAL(precision, _)` at its scale.
    pub fn fits(&self, precision: u32) -> bool {
        match pow10(precision) {
            Some(max) => self.unscaled.abs() < max,
            None => true,
        }
    }

    /// The value as `DECIMAL(precision, scale)`, rounding half up; `None`
    /// when it overflows (ksqlDB's "Numeric field overflow").
    pub fn fit(&self, precision: u32, scale: u32) -> Option<Dec> {
        let r = self.rescale(scale)?;
        r.fits(precision).then_some(r)
    }

    /// A double as `DECIMAL(precision, scale)`: like `new BigDecimal(d,
    /// new MathContext(precision))` then `setScale(scale, HALF_UP)`.
    pub fn from_f64(d: f64, precision: u32, scale: u32) -> Option<Dec> {
        if !d.is_finite() {
            return None;
        }
        let p = precision.clamp(1, MAX_PRECISION) as usize;
        Dec::parse(&format!("{:.*e}", p - 1, d))?.fit(precision, scale)
    }

    pub fn to_f64(&self) -> f64 {
        // Through the text so that 0.1 becomes the double nearest 0.1.
        self.to_plain_string().parse().unwrap_or(f64::NAN)
    }

    /// The integer part, truncated toward zero (`BigDecimal.longValue()`).
    pub fn trunc_i64(&self) -> i64 {
        let q = match pow10(self.scale) {
            Some(d) => self.unscaled / d,
            None => 0,
        };
        q as i64
    }

    /// Java's `BigDecimal.toPlainString()`: all the scale's digits.
    pub fn to_plain_string(&self) -> String {
        let digits = self.unscaled.unsigned_abs().to_string();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let s = self.scale as usize;
        if s == 0 {
            return format!("{sign}{digits}");
        }
        let padded = if digits.len() <= s {
            format!("{}{digits}", "0".repeat(s + 1 - digits.len()))
        } else {
            digits
        };
        let (i, f) = padded.split_at(padded.len() - s);
        format!("{sign}{i}.{f}")
    }

    /// Exact comparison across scales.
    pub fn cmp_dec(&self, other: &Dec) -> Ordering {
        let s = self.scale.max(other.scale);
        match (self.rescale(s), other.rescale(s)) {
            (Some(a), Some(b)) => a.unscaled.cmp(&b.unscaled),
            _ => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// Two's-complement big-endian bytes, shortest form (Avro's and
    /// Connect's decimal encoding, Java's `BigInteger.toByteArray()`).
    pub fn to_be_bytes(&self) -> Vec<u8> {
        let all = self.unscaled.to_be_bytes();
        let mut start = 0;
        while start < 15 {
            let (b, next) = (all[start], all[start + 1]);
            if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        all[start..].to_vec()
    }

    /// The inverse of `to_be_bytes`; `None` past 16 bytes.
    pub fn from_be_bytes(bytes: &[u8], scale: u32) -> Option<Dec> {
        if bytes.len() > 16 {
            return None;
        }
        if bytes.is_empty() {
            return Some(Dec::new(0, scale));
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut all = [fill; 16];
        all[16 - bytes.len()..].copy_from_slice(bytes);
        Some(Dec::new(i128::from_be_bytes(all), scale))
    }
}

/// An arithmetic operator on decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// ksqlDB's result type of `DECIMAL(p1, s1) op DECIMAL(p2, s2)`
/// (`SqlDecimal.add/multiply/divide/modulus`).
pub fn result_type(op: DecOp, (p1, s1): (u32, u32), (p2, s2): (u32, u32)) -> (u32, u32) {
    match op {
        DecOp::Add | DecOp::Sub => (s1.max(s2) + (p1 - s1).max(p2 - s2) + 1, s1.max(s2)),
        DecOp::Mul => (p1 + p2 + 1, s1 + s2),
        DecOp::Div => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        DecOp::Mod => ((p1 - s1).min(p2 - s2) + s1.max(s2), s1.max(s2)),
    }
}

/// Evaluates `a op b` into `DECIMAL(precision, scale)`. As ksqlDB computes
/// with `RoundingMode.UNNECESSARY`, a result that would need rounding (a
/// quotient with more digits than the scale), division by zero and
/// overflow all yield `None` (NULL).
pub fn apply(op: DecOp, a: Dec, b: Dec, precision: u32, scale: u32) -> Option<Dec> {
    let r = match op {
        DecOp::Add | DecOp::Sub | DecOp::Mod => {
            let s = a.scale.max(b.scale);
            let (x, y) = (a.rescale(s)?.unscaled, b.rescale(s)?.unscaled);
            let v = match op {
                DecOp::Add => x.checked_add(y)?,
                DecOp::Sub => x.checked_sub(y)?,
                _ if y == 0 => return None,
                _ => x % y,
            };
            Dec::new(v, s)
        }
        DecOp::Mul => Dec::new(a.unscaled.checked_mul(b.unscaled)?, a.scale + b.scale),
        DecOp::Div => {
            if b.unscaled == 0 {
                return None;
            }
            // a / b at `scale`: a * 10^(scale + b.scale - a.scale) / b, exact.
            let shift = i64::from(scale) + i64::from(b.scale) - i64::from(a.scale);
            let (num, den) = if shift >= 0 {
                (a.unscaled.checked_mul(pow10(shift as u32)?)?, b.unscaled)
            } else {
                (a.unscaled, b.unscaled.checked_mul(pow10((-shift) as u32)?)?)
            };
            if num % den != 0 {
                return None;
            }
            Dec::new(num / den, scale)
        }
    };
    let r = r.rescale_exact(scale)?;
    r.fits(precision).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn literals_type_like_ksqldb() {
        assert_eq!(d("1.5").literal_type(), (2, 1));
        assert_eq!(d("0.005").literal_type(), (4, 3));
        assert_eq!(d("0.8").literal_type(), (2, 1));
        assert_eq!(d("-12.50").literal_type(), (4, 2));
        assert_eq!(d("0.0").literal_type(), (2, 1));
    }

    #[test]
    fn text_round_trips() {
        for s in ["1.50", "-0.05", "0.00", "123", "-7.1"] {
            assert_eq!(d(s).to_plain_string(), s);
        }
        assert_eq!(d("1.5E2").to_plain_string(), "150");
        assert!(Dec::parse("1.2.3").is_none());
        assert!(Dec::parse("").is_none());
    }

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(d("2.675").rescale(2), Some(d("2.68")));
        assert_eq!(d("-2.675").rescale(2), Some(d("-2.68")));
        assert_eq!(d("2.674").rescale(2), Some(d("2.67")));
        assert_eq!(Dec::from_f64(2.675, 4, 2), Some(d("2.68")));
        assert_eq!(Dec::from_f64(0.1, 3, 2), Some(d("0.10")));
        assert_eq!(Dec::from_f64(123.0, 4, 2), None);
    }

    #[test]
    fn result_types_follow_ksqldb() {
        assert_eq!(result_type(DecOp::Add, (4, 2), (3, 1)), (5, 2));
        assert_eq!(result_type(DecOp::Mul, (4, 2), (3, 1)), (8, 3));
        assert_eq!(result_type(DecOp::Div, (4, 2), (3, 1)), (9, 6));
        assert_eq!(result_type(DecOp::Mod, (4, 2), (3, 1)), (4, 2));
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(
            apply(DecOp::Add, d("1.25"), d("0.5"), 5, 2),
            Some(d("1.75"))
        );
        assert_eq!(
            apply(DecOp::Mul, d("1.25"), d("0.5"), 8, 3),
            Some(d("0.625"))
        );
        assert_eq!(
            apply(DecOp::Div, d("1.00"), d("4.0"), 9, 6),
            Some(d("0.250000"))
        );
        // 1/3 needs rounding: ksqlDB's UNNECESSARY mode fails it.
        assert_eq!(apply(DecOp::Div, d("1.0"), d("3.0"), 9, 6), None);
        assert_eq!(apply(DecOp::Div, d("1.0"), d("0.0"), 9, 6), None);
        assert_eq!(apply(DecOp::Mod, d("-7.5"), d("2"), 3, 1), Some(d("-1.5")));
        assert_eq!(apply(DecOp::Add, d("99.9"), d("0.1"), 3, 1), None);
    }

    #[test]
    fn bytes_are_twos_complement() {
        for (s, bytes) in [
            ("0", vec![0u8]),
            ("1.27", vec![127]),
            ("1.28", vec![0, 128]),
            ("-1.28", vec![0x80]),
            ("-1.29", vec![0xff, 0x7f]),
        ] {
            let v = d(s);
            assert_eq!(v.to_be_bytes(), bytes, "{s}");
            assert_eq!(Dec::from_be_bytes(&bytes, v.scale), Some(v));
        }
    }
}
