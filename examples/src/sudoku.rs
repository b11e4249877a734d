//! The sudoku example's protocol and solver, kept apart from any I/O so
//! both are unit-tested and shared by the loop and the compute pool.
//!
//! A request is one line: `[id:]<81 cells>\r\n`, each cell a digit `1`-`9`,
//! or `.`/`0` for an empty one. The reply is `id:<81 digits>\r\n` or
//! `id:NoSolution\r\n` (without `id:` when the request had none). muduo's
//! design note: the id lets a client pipeline requests and match replies that
//! come back out of order, as they do when a pool solves them.
//!
//! ```
//! use examples::sudoku::{parse_line, solve, Request};
//! let puzzle = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
//! let line = format!("x:{puzzle}");
//! let req = parse_line(line.as_bytes()).unwrap();
//! assert_eq!(req.id, Some(&b"x"[..]));
//! let solved = solve(&req.cells).unwrap();
//! assert!(solved.starts_with(b"534678912"));
//! ```

/// Cells in a grid.
pub const CELLS: usize = 81;
/// Longest request line accepted (id included, line end excluded).
pub const MAX_LINE: usize = 128;

/// A parsed request, borrowing its id from the line.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The client's tag, echoed in the reply.
    pub id: Option<&'a [u8]>,
    /// 0 for empty, else 1..=9.
    pub cells: [u8; CELLS],
}

/// Why a line is not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// Not 81 cells after the id.
    Length(usize),
    /// A cell that is not a digit or `.`.
    Cell(u8),
}

/// Parses one line without its line end.
pub fn parse_line(line: &[u8]) -> Result<Request<'_>, BadRequest> {
    let (id, grid) = match line.iter().position(|&b| b == b':') {
        Some(colon) => (Some(&line[..colon]), &line[colon + 1..]),
        None => (None, line),
    };
    if grid.len() != CELLS {
        return Err(BadRequest::Length(grid.len()));
    }
    let mut cells = [0u8; CELLS];
    for (cell, &b) in cells.iter_mut().zip(grid) {
        *cell = match b {
            b'1'..=b'9' => b - b'0',
            b'.' | b'0' => 0,
            other => return Err(BadRequest::Cell(other)),
        };
    }
    Ok(Request { id, cells })
}

/// Appends the reply line for `id` and `body` (the solution, `NoSolution`,
/// `ServerTooBusy`) to `out`, without its line end: the line codec
/// (`imconn::LineCodec`) adds `\r\n` when it is sent.
pub fn write_reply(out: &mut Vec<u8>, id: Option<&[u8]>, body: &[u8]) {
    if let Some(id) = id {
        out.extend_from_slice(id);
        out.push(b':');
    }
    out.extend_from_slice(body);
}

/// The body of a reply to `cells`: 81 digits, or `NoSolution`.
pub fn answer(cells: &[u8; CELLS]) -> Vec<u8> {
    match solve(cells) {
        Some(digits) => digits.to_vec(),
        None => b"NoSolution".to_vec(),
    }
}

/// Solves a grid: the 81 digits of the first solution, or `None`.
pub fn solve(cells: &[u8; CELLS]) -> Option<[u8; CELLS]> {
    let mut s = Solver {
        grid: *cells,
        rows: [0; 9],
        cols: [0; 9],
        boxes: [0; 9],
    };
    for (i, &d) in cells.iter().enumerate() {
        if d != 0 {
            let bit = 1u16 << d;
            let (r, c, b) = unit(i);
            if (s.rows[r] | s.cols[c] | s.boxes[b]) & bit != 0 {
                return None; // the givens already conflict
            }
            s.rows[r] |= bit;
            s.cols[c] |= bit;
            s.boxes[b] |= bit;
        }
    }
    if !s.search() {
        return None;
    }
    let mut out = [0u8; CELLS];
    for (o, d) in out.iter_mut().zip(s.grid) {
        *o = b'0' + d;
    }
    Some(out)
}

fn unit(i: usize) -> (usize, usize, usize) {
    let (r, c) = (i / 9, i % 9);
    (r, c, (r / 3) * 3 + c / 3)
}

/// Depth-first search over bitmasks of used digits, always branching on the
/// empty cell with the fewest candidates.
struct Solver {
    grid: [u8; CELLS],
    rows: [u16; 9],
    cols: [u16; 9],
    boxes: [u16; 9],
}

impl Solver {
    fn candidates(&self, i: usize) -> u16 {
        let (r, c, b) = unit(i);
        !(self.rows[r] | self.cols[c] | self.boxes[b]) & 0b11_1111_1110
    }

    fn search(&mut self) -> bool {
        let mut best: Option<(usize, u16)> = None;
        for i in 0..CELLS {
            if self.grid[i] == 0 {
                let cand = self.candidates(i);
                if cand == 0 {
                    return false;
                }
                let fewer = match best {
                    None => true,
                    Some((_, b)) => cand.count_ones() < b.count_ones(),
                };
                if fewer {
                    best = Some((i, cand));
                }
            }
        }
        let Some((i, mut cand)) = best else {
            return true; // no empty cell left
        };
        let (r, c, b) = unit(i);
        while cand != 0 {
            let bit = cand & cand.wrapping_neg();
            cand &= cand - 1;
            self.grid[i] = bit.trailing_zeros() as u8;
            self.rows[r] |= bit;
            self.cols[c] |= bit;
            self.boxes[b] |= bit;
            if self.search() {
                return true;
            }
            self.rows[r] &= !bit;
            self.cols[c] &= !bit;
            self.boxes[b] &= !bit;
        }
        self.grid[i] = 0;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUZZLE: &str =
        "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
    const SOLUTION: &str =
        "534678912672195348198342567859761423426853791713924856961537284287419635345286179";

    #[test]
    fn solves_a_classic() {
        let req = parse_line(PUZZLE.as_bytes()).unwrap();
        assert_eq!(req.id, None);
        assert_eq!(&solve(&req.cells).unwrap()[..], SOLUTION.as_bytes());
    }

    #[test]
    fn solves_an_empty_grid_and_a_hard_one() {
        assert!(solve(&[0; CELLS]).is_some());
        // Arto Inkala's "hardest sudoku".
        let hard =
            "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4..";
        let req = parse_line(hard.as_bytes()).unwrap();
        let sol = solve(&req.cells).unwrap();
        assert!(sol.iter().all(|d| (b'1'..=b'9').contains(d)));
    }

    #[test]
    fn conflicting_givens_have_no_solution() {
        let mut bad = PUZZLE.as_bytes().to_vec();
        bad[2] = b'5'; // a second 5 in the first row
        let req = parse_line(&bad).unwrap();
        assert_eq!(solve(&req.cells), None);
        assert_eq!(answer(&req.cells), b"NoSolution");
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(parse_line(b"123"), Err(BadRequest::Length(3)));
        let mut line = PUZZLE.as_bytes().to_vec();
        line[0] = b'x';
        assert_eq!(parse_line(&line), Err(BadRequest::Cell(b'x')));
        assert_eq!(parse_line(b"id:"), Err(BadRequest::Length(0)));
    }

    #[test]
    fn replies_carry_the_id() {
        let mut out = Vec::new();
        write_reply(&mut out, Some(b"7"), b"NoSolution");
        assert_eq!(out, b"7:NoSolution");
        out.clear();
        write_reply(&mut out, None, b"ServerTooBusy");
        assert_eq!(out, b"ServerTooBusy");
    }
}
