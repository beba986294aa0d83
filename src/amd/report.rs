//! The evaluation report: accuracy, confusion matrix, timing relative to the notes' events,
//! the costly errors, and the per-clip rows CSV.

use std::fmt;

use super::detector::AmdResult;
use super::eval::EvalRow;
use super::labels::Label;

/// Results of [`eval_corpus`]; `Display` prints the full report.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// One row per clip, in `labels.csv` order.
    pub rows: Vec<EvalRow>,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// (median, p90, max, n) of the values.
fn stats(mut v: Vec<f64>) -> Option<(f64, f64, f64, usize)> {
    v.sort_by(f64::total_cmp);
    Some((
        percentile(&v, 0.5)?,
        percentile(&v, 0.9)?,
        *v.last()?,
        v.len(),
    ))
}

fn fmt_stats(v: Vec<f64>) -> String {
    match stats(v) {
        Some((m, p, x, n)) => format!("median {m:.2} s, p90 {p:.2} s, max {x:.2} s (n={n})"),
        None => "n/a (n=0)".to_owned(),
    }
}

impl EvalReport {
    fn of(&self, label: Label) -> impl Iterator<Item = &EvalRow> {
        self.rows.iter().filter(move |r| r.label == label)
    }

    /// Recall for one label (correct / clips with that label); `None` if there are none.
    pub fn accuracy(&self, label: Label) -> Option<f64> {
        let n = self.of(label).count();
        (n > 0).then(|| self.of(label).filter(|r| r.correct()).count() as f64 / n as f64)
    }

    /// Correct / all clips.
    pub fn overall_accuracy(&self) -> f64 {
        let n = self.rows.len().max(1);
        self.rows.iter().filter(|r| r.correct()).count() as f64 / n as f64
    }

    /// Unweighted mean of the per-label accuracies (labels present only).
    pub fn mean_class_accuracy(&self) -> f64 {
        let accs: Vec<f64> = Label::ALL
            .iter()
            .filter_map(|l| self.accuracy(*l))
            .collect();
        accs.iter().sum::<f64>() / accs.len().max(1) as f64
    }

    /// Confusion matrix: rows = labels (human, machine, fax, silence), columns = decisions
    /// (human, machine, fax, unknown).
    pub fn confusion(&self) -> [[usize; 4]; 4] {
        let mut m = [[0usize; 4]; 4];
        for r in &self.rows {
            let i = Label::ALL.iter().position(|l| *l == r.label).unwrap_or(0);
            let j = AmdResult::ALL
                .iter()
                .position(|d| *d == r.outcome.decision)
                .unwrap_or(3);
            m[i][j] += 1;
        }
        m
    }

    /// Humans taken for machine or fax (the costly error).
    pub fn human_as_machine_or_fax(&self) -> usize {
        self.of(Label::Human)
            .filter(|r| matches!(r.outcome.decision, AmdResult::Machine | AmdResult::Fax))
            .count()
    }

    /// Machines taken for humans.
    pub fn machine_as_human(&self) -> usize {
        self.of(Label::Machine)
            .filter(|r| r.outcome.decision == AmdResult::Human)
            .count()
    }

    /// Clips still undecided when they ended.
    pub fn timeouts(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome.timeout).count()
    }

    /// Misclassified rows.
    pub fn misclassified(&self) -> Vec<&EvalRow> {
        self.rows.iter().filter(|r| !r.correct()).collect()
    }

    /// Correct humans: t_d minus end of the first utterance (s).
    pub fn human_delays(&self) -> Vec<f64> {
        self.of(Label::Human)
            .filter(|r| r.correct())
            .filter_map(|r| Some(r.t_d() - r.notes.first_speech_end()?))
            .collect()
    }

    /// Correct machines with a greeting: t_d minus end of greeting (s; negative = before the
    /// greeting ended).
    pub fn machine_delays(&self) -> Vec<f64> {
        self.of(Label::Machine)
            .filter(|r| r.correct())
            .filter_map(|r| Some(r.t_d() - r.notes.greeting?.1))
            .collect()
    }

    /// Correct faxes: t_d minus onset of the first fax tone (s).
    pub fn fax_delays(&self) -> Vec<f64> {
        self.of(Label::Fax)
            .filter(|r| r.correct())
            .filter_map(|r| Some(r.t_d() - r.notes.fax_onset()?))
            .collect()
    }

    /// Machine clips with a beep: (decided as machine before the beep started, total).
    pub fn machine_before_beep(&self) -> (usize, usize) {
        let with_beep: Vec<&EvalRow> = self
            .of(Label::Machine)
            .filter(|r| r.notes.beep.is_some())
            .collect();
        let before = with_beep
            .iter()
            .filter(|r| r.correct() && r.notes.beep.is_some_and(|b| r.t_d() < b.2))
            .count();
        (before, with_beep.len())
    }

    /// Machine clips with a beep: (beep notices within 0.5 s of the beep's end, total), and
    /// the notice error (notice time minus true beep end, s) of each notice.
    pub fn beep_notices(&self) -> (usize, usize, Vec<f64>) {
        let mut ok = 0;
        let mut total = 0;
        let mut errs = Vec::new();
        for r in self.of(Label::Machine) {
            let Some((_, dur, at)) = r.notes.beep else {
                continue;
            };
            total += 1;
            if let Some((ms, _)) = r.outcome.beep {
                let err = ms as f64 / 1000.0 - (at + dur);
                errs.push(err);
                if err.abs() <= 0.5 {
                    ok += 1;
                }
            }
        }
        (ok, total, errs)
    }

    /// `file,label,decision,t_d` rows (t_d in seconds), header first.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("file,label,decision,t_d\n");
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{},{:.2}\n",
                r.file,
                r.label.as_str(),
                r.outcome.decision.as_str(),
                r.t_d()
            ));
        }
        s
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_accuracy(f)?;
        self.fmt_confusion(f)?;
        self.fmt_timing(f)?;
        self.fmt_clips(f)
    }
}

impl EvalReport {
    /// Recall per class and overall.
    fn fmt_accuracy(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |a: Option<f64>| a.map_or("n/a".to_owned(), |a| format!("{:.1}%", a * 100.0));
        writeln!(f, "AMD evaluation: {} clips", self.rows.len())?;
        writeln!(f, "accuracy per class (recall):")?;
        for l in Label::ALL {
            let n = self.of(l).count();
            let ok = self.of(l).filter(|r| r.correct()).count();
            writeln!(
                f,
                "  {:<8} {:>6}  ({ok}/{n})",
                l.as_str(),
                pct(self.accuracy(l))
            )?;
        }
        writeln!(
            f,
            "overall accuracy      {}",
            pct(Some(self.overall_accuracy()))
        )?;
        writeln!(
            f,
            "unweighted class mean {}",
            pct(Some(self.mean_class_accuracy()))
        )?;
        Ok(())
    }

    /// The confusion matrix and the two costly mistakes.
    fn fmt_confusion(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "confusion (rows = label, columns = decision):")?;
        writeln!(
            f,
            "  {:<8} {:>6} {:>8} {:>4} {:>8}",
            "", "human", "machine", "fax", "unknown"
        )?;
        for (i, row) in self.confusion().iter().enumerate() {
            writeln!(
                f,
                "  {:<8} {:>6} {:>8} {:>4} {:>8}",
                Label::ALL[i].as_str(),
                row[0],
                row[1],
                row[2],
                row[3]
            )?;
        }
        writeln!(
            f,
            "human taken for machine/fax: {}",
            self.human_as_machine_or_fax()
        )?;
        writeln!(
            f,
            "machine taken for human:     {}",
            self.machine_as_human()
        )?;
        writeln!(f, "time-outs (undecided at clip end): {}", self.timeouts())?;
        Ok(())
    }

    /// How soon each class was decided, absolutely and relative to the audio's landmarks.
    fn fmt_timing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decision time t_d (correct decisions):")?;
        for l in Label::ALL {
            let v = self
                .of(l)
                .filter(|r| r.correct())
                .map(|r| r.t_d())
                .collect();
            writeln!(f, "  {:<8} {}", l.as_str(), fmt_stats(v))?;
        }
        writeln!(f, "relative timing:")?;
        writeln!(
            f,
            "  human   t_d - end of first speech: {}",
            fmt_stats(self.human_delays())
        )?;
        writeln!(
            f,
            "  machine t_d - end of greeting:     {}",
            fmt_stats(self.machine_delays())
        )?;
        let (before, with_beep) = self.machine_before_beep();
        writeln!(
            f,
            "  machine decided before the beep:   {before}/{with_beep}"
        )?;
        writeln!(
            f,
            "  fax     t_d - first tone onset:    {}",
            fmt_stats(self.fax_delays())
        )?;
        let (ok, total, errs) = self.beep_notices();
        let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        writeln!(
            f,
            "  beep notices within 0.5 s of beep end: {ok}/{total}; |error| {}",
            fmt_stats(abs)
        )?;
        Ok(())
    }

    /// The clips marked hard, and every misclassified one.
    fn fmt_clips(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hard: Vec<&EvalRow> = self
            .rows
            .iter()
            .filter(|r| r.notes.hard.is_some())
            .collect();
        if !hard.is_empty() {
            writeln!(f, "hard clips:")?;
            for r in hard {
                writeln!(
                    f,
                    "  {} {} -> {} at {:.2} s ({}) [{}]",
                    r.file,
                    r.label.as_str(),
                    r.outcome.decision,
                    r.t_d(),
                    r.outcome.cause,
                    r.notes.hard.as_deref().unwrap_or("")
                )?;
            }
        }
        let bad = self.misclassified();
        writeln!(f, "misclassified: {}", bad.len())?;
        for r in bad {
            writeln!(
                f,
                "  {} {} -> {} at {:.2} s ({})",
                r.file,
                r.label.as_str(),
                r.outcome.decision,
                r.t_d(),
                r.outcome.cause
            )?;
        }
        Ok(())
    }
}
