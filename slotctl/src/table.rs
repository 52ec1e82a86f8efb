//! Plain aligned text tables for human output.
//!
//! Contract: [`render`] returns one line per row plus a header line, each ending in `\n`;
//! columns are left-aligned, separated by two spaces, padded to their widest cell (counted in
//! chars), with no trailing spaces. Rows shorter than the header get empty cells; cells beyond
//! the header's width are kept and aligned too.

/// The table `headers` + `rows` as text.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).chain([headers.len()]).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn aligns_columns() {
        let t = render(&["ID", "STATE", "PRIMARY"], &[row(&["s0", "active", "10.0.0.1:3306"]), row(&["shard-12", "draining", "h:1"])]);
        assert_eq!(
            t,
            "ID        STATE     PRIMARY\n\
             s0        active    10.0.0.1:3306\n\
             shard-12  draining  h:1\n"
        );
    }

    #[test]
    fn ragged_rows_and_unicode() {
        let t = render(&["A", "B"], &[row(&["é"]), row(&["xy", "z", "extra"])]);
        assert_eq!(t, "A   B\né\nxy  z  extra\n");
    }

    #[test]
    fn header_only() {
        assert_eq!(render(&["VERSION", "ACTOR"], &[]), "VERSION  ACTOR\n");
    }
}
