//! Tracepoint records from tracefs: the `format` files and the record offsets the
//! programs read.

use std::{fs, path::Path};

use monitor_common::KernelConfig;

use super::OffsetsError;

/// Stand-in path in [`OffsetsError::Format`] when [`parse_format`] was given
/// text rather than a file.
const FORMAT_TEXT: &str = "<format text>";

/// Tracepoints whose records the programs read.
pub(super) const TP_EXEC: &str = "sched/sched_process_exec";
pub(super) const TP_FORK: &str = "sched/sched_process_fork";
pub(super) const TP_EXIT: &str = "sched/sched_process_exit";

/// One `field:` line of a tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C type as tracefs prints it, array suffix included (`char[16]`,
    /// `__data_loc char[]`).
    pub c_type: String,
    /// Byte offset in the record, counted from the start of the common header
    /// (which is where a BPF tracepoint program's context points).
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// A `__data_loc` field: the 4-byte word at `offset` holds the payload's
    /// offset from the record start in its low 16 bits and its length in the
    /// high 16 bits.
    pub is_data_loc: bool,
}

/// A parsed tracefs `format` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TracepointFormat {
    /// The `name:` line (e.g. `sched_process_exec`), if present.
    pub name: Option<String>,
    /// The `ID:` line, if present.
    pub id: Option<u32>,
    /// Common fields first, in file order.
    pub fields: Vec<TracepointField>,
}

impl TracepointFormat {
    pub fn field(&self, name: &str) -> Option<&TracepointField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

pub(super) fn fill_tracepoints(
    events_dir: &Path,
    cfg: &mut KernelConfig,
) -> Result<(), OffsetsError> {
    let exec = read_format(events_dir, TP_EXEC)?;
    // `filename` is bprm->filename; the record stores it out of line.
    cfg.tp_exec_filename = data_loc_field(&exec, TP_EXEC, "filename")?;
    // old_pid is the thread that called execve (pid is the tgid after a
    // multithreaded exec's de_thread()).
    cfg.tp_exec_old_pid = sized_field(&exec, TP_EXEC, "old_pid", 4)?;

    // 6.1 had `char parent_comm[16]`/`child_comm[16]` inline (child_pid at
    // 44); newer kernels store the comms as __data_loc strings (child_pid at
    // 20 on 6.18). Only the pids matter here, wherever they are.
    let fork = read_format(events_dir, TP_FORK)?;
    cfg.tp_fork_parent_pid = sized_field(&fork, TP_FORK, "parent_pid", 4)?;
    cfg.tp_fork_child_pid = sized_field(&fork, TP_FORK, "child_pid", 4)?;

    // `bool group_dead` was added by Andrii Nakryiko's 2025 patch
    // "sched/tracepoints: Move and extend the sched_process_exit() tracepoint"
    // (absent in 6.14 and in 6.1, present in 6.17+). Without it the exit
    // program has to work out the last thread itself.
    let exit = read_format(events_dir, TP_EXIT)?;
    cfg.tp_exit_group_dead = if exit.field("group_dead").is_some() {
        sized_field(&exit, TP_EXIT, "group_dead", 1)?
    } else {
        KernelConfig::ABSENT
    };
    Ok(())
}

fn read_format(
    events_dir: &Path,
    tracepoint: &'static str,
) -> Result<TracepointFormat, OffsetsError> {
    let path = events_dir.join(tracepoint).join("format");
    let text = fs::read_to_string(&path).map_err(|source| OffsetsError::TracefsRead {
        path: path.clone(),
        source,
    })?;
    parse_format_at(&text, &path)
}

fn required<'a>(
    format: &'a TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<&'a TracepointField, OffsetsError> {
    format
        .field(field)
        .ok_or(OffsetsError::MissingTracepointField { tracepoint, field })
}

/// Offset of a plain field of exactly `size` bytes.
fn sized_field(
    format: &TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
    size: u32,
) -> Result<u32, OffsetsError> {
    let f = required(format, tracepoint, field)?;
    if f.size != size {
        return Err(OffsetsError::TracepointFieldSize {
            tracepoint,
            field,
            size: f.size,
            expected: size,
        });
    }
    Ok(f.offset)
}

/// Offset of the 4-byte `data_loc` word of a `__data_loc char[]` field.
fn data_loc_field(
    format: &TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<u32, OffsetsError> {
    let f = required(format, tracepoint, field)?;
    if !f.is_data_loc {
        return Err(OffsetsError::TracepointFieldNotDataLoc {
            tracepoint,
            field,
            c_type: f.c_type.clone(),
        });
    }
    sized_field(format, tracepoint, field, 4)
}

/// Parses the text of a tracefs `format` file.
///
/// Lines other than `name:`, `ID:` and `field:` (the `format:` header, blank
/// lines, anything a future kernel adds) are skipped; parsing stops at
/// `print fmt:`. A malformed `field:` line is an error.
pub fn parse_format(text: &str) -> Result<TracepointFormat, OffsetsError> {
    parse_format_at(text, Path::new(FORMAT_TEXT))
}

fn parse_format_at(text: &str, path: &Path) -> Result<TracepointFormat, OffsetsError> {
    let error = |line: usize, reason: &'static str| OffsetsError::Format {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut format = TracepointFormat::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if let Some(name) = line.strip_prefix("name:") {
            format.name = Some(name.trim().to_owned());
        } else if let Some(id) = line.strip_prefix("ID:") {
            let id = id
                .trim()
                .parse()
                .map_err(|_| error(line_no, "`ID:` is not a number"))?;
            format.id = Some(id);
        } else if let Some(decl) = line
            .strip_prefix("field:")
            // Very old kernels marked some fields `field special:`.
            .or_else(|| line.strip_prefix("field special:"))
        {
            let field = parse_field(decl).map_err(|reason| error(line_no, reason))?;
            if format.field(&field.name).is_some() {
                return Err(error(line_no, "duplicate field name"));
            }
            format.fields.push(field);
        } else if line.starts_with("print fmt:") {
            break;
        }
    }
    if format.fields.is_empty() {
        return Err(OffsetsError::EmptyFormat {
            path: path.to_owned(),
        });
    }
    Ok(format)
}

/// Parses what follows `field:`, e.g.
/// `__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;`.
fn parse_field(decl: &str) -> Result<TracepointField, &'static str> {
    let mut parts = decl.split(';').map(str::trim);
    let declaration = parts.next().unwrap_or_default();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in parts.filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or("expected `key:value;` after the field declaration")?;
        let number = || value.trim().parse::<u32>();
        match key.trim() {
            "offset" => offset = Some(number().map_err(|_| "`offset:` is not a number")?),
            "size" => size = Some(number().map_err(|_| "`size:` is not a number")?),
            "signed" => {
                signed = Some(match value.trim() {
                    "0" => false,
                    "1" => true,
                    _ => return Err("`signed:` is not 0 or 1"),
                });
            }
            // Unknown keys from future kernels are not our concern.
            _ => {}
        }
    }
    let offset = offset.ok_or("field has no `offset:`")?;
    let size = size.ok_or("field has no `size:`")?;

    // "<type> <name>[<array suffix>]"; pointers may glue the `*` to the name.
    let (c_type, name) = declaration
        .rsplit_once(char::is_whitespace)
        .ok_or("field declaration has no type")?;
    let stars = name.len() - name.trim_start_matches('*').len();
    let name = &name[stars..];
    let (name, array) = name.find('[').map_or((name, ""), |i| name.split_at(i));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("field name is not a C identifier");
    }
    let c_type = format!("{}{}{array}", c_type.trim(), "*".repeat(stars));
    Ok(TracepointField {
        name: name.to_owned(),
        is_data_loc: c_type.starts_with("__data_loc "),
        c_type,
        offset,
        size,
        // Absent on kernels before 2.6.32; no field we read is signed-sensitive.
        signed: signed.unwrap_or(false),
    })
}
