//! Learning-rate schedules with linear warmup, as transformers defines them
//! (`get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`,
//! `get_cosine_schedule_with_warmup`), plus a floor `min_lr`:
//! ```text
//! warmup (s < W):  η·s/W
//! constant:        η
//! linear:          min + (η − min)·(N − s)/(N − W)
//! cosine:          min + (η − min)·½(1 + cos(π·(s − W)/(N − W)))
//! ```
//! `s` counts optimizer steps from 0; `N` is the total.

use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    Constant,
    Linear,
    Cosine,
}

impl FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(ScheduleKind::Constant),
            "linear" => Ok(ScheduleKind::Linear),
            "cosine" => Ok(ScheduleKind::Cosine),
            _ => Err(format!("{s:?} is not a schedule: use constant, linear or cosine")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup: u64,
    pub total: u64,
}

impl Schedule {
    /// The learning rate of optimizer step `s` (0-based).
    pub fn lr_at(&self, s: u64) -> f32 {
        if s < self.warmup {
            return self.lr * s as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let done = ((s - self.warmup) as f64 / span).min(1.0);
        let factor = match self.kind {
            ScheduleKind::Constant => return self.lr,
            ScheduleKind::Linear => 1.0 - done,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
        };
        self.min_lr + (self.lr - self.min_lr) * factor as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let s = Schedule { kind: ScheduleKind::Linear, lr: 1.0, min_lr: 0.0, warmup: 10, total: 110 };
        assert_eq!(s.lr_at(0), 0.0);
        assert_eq!(s.lr_at(5), 0.5);
        assert_eq!(s.lr_at(10), 1.0);
        assert!((s.lr_at(60) - 0.5).abs() < 1e-6);
        assert_eq!(s.lr_at(110), 0.0);
        let c = Schedule { kind: ScheduleKind::Cosine, min_lr: 0.1, ..s };
        assert!((c.lr_at(60) - 0.55).abs() < 1e-6);
        assert!((c.lr_at(110) - 0.1).abs() < 1e-6);
        let k = Schedule { kind: ScheduleKind::Constant, ..s };
        assert_eq!(k.lr_at(100), 1.0);
        assert!("bogus".parse::<ScheduleKind>().is_err());
    }
}
