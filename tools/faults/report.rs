//! A scenario's figures: rows of the summary table and its own detail tables (Markdown).

pub struct Report {
    pub scenario: &'static str,
    pub rows: Vec<[String; 4]>,
    pub details: Vec<String>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            rows: Vec::new(),
            details: Vec::new(),
        }
    }

    /// One summary row: trials (first row of a scenario), figure, result, what it must be.
    pub fn summary(&mut self, trials: &str, figure: &str, result: String, must: &str) {
        self.rows.push([
            trials.to_owned(),
            figure.to_owned(),
            result,
            must.to_owned(),
        ]);
    }

    pub fn detail(&mut self, markdown: String) {
        self.details.push(markdown);
    }
}

/// Prints the summary table of every scenario, then each scenario's details.
pub fn print(reports: &[Report]) {
    println!();
    println!("| scenario | trials | figure | result | must be |");
    println!("|---|---|---|---:|---:|");
    for report in reports {
        for (i, [trials, figure, result, must]) in report.rows.iter().enumerate() {
            let name = if i == 0 { report.scenario } else { "" };
            println!("| {name} | {trials} | {figure} | {result} | {must} |");
        }
    }
    for report in reports {
        if report.details.is_empty() {
            continue;
        }
        println!();
        println!("### {}", report.scenario);
        for detail in &report.details {
            println!();
            print!("{detail}");
        }
    }
}
