//! ONNX external data: weights kept in side files next to the `.onnx` (torch's dynamo exporter
//! writes `model.onnx` plus `model.onnx.data` by default, and any model above protobuf's 2 GB
//! limit must).
//!
//! tract reads such tensors from the file system, which the browser does not have, and only when
//! it is given the model's path. So the one load pipeline resolves them itself, the same way
//! natively and in wasm: every tensor whose `data_location` is `EXTERNAL` gets its bytes
//! (`location`, `offset`, `length` of its `external_data`) copied from a [`SideFiles`] into its
//! `raw_data`, and the model is then read as if it had been saved in one file. The CLI's side
//! files are read from the model's directory when a tensor names them, the page's are the files
//! dropped or picked with the model.

use std::collections::HashMap;

use tract_onnx::pb::tensor_proto::DataLocation;
use tract_onnx::pb::{ModelProto, TensorProto};

use crate::error::{Error, Result};

/// Reads the side file of a relative location (already checked by [`check_location`]).
pub type SideLoader = Box<dyn FnMut(&str) -> Result<Vec<u8>>>;

/// The side files a model's external tensors may name: given by name, or read on first use.
#[derive(Default)]
pub struct SideFiles {
    files: HashMap<String, Vec<u8>>,
    loader: Option<SideLoader>,
}

impl std::fmt::Debug for SideFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideFiles").field("files", &self.files.keys().collect::<Vec<_>>()).finish()
    }
}

impl SideFiles {
    /// No side files: a model with external data is an error naming the file it needs.
    pub fn none() -> SideFiles {
        SideFiles::default()
    }

    /// Side files given by name (the page's dropped files), `name` as a tensor's `location` names it.
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> SideFiles {
        SideFiles { files: files.into_iter().collect(), loader: None }
    }

    /// Side files read by `loader` when a tensor first names them (the CLI reads them from the
    /// model's directory); each is read once.
    pub fn with_loader(loader: SideLoader) -> SideFiles {
        SideFiles { files: HashMap::new(), loader: Some(loader) }
    }

    /// Total bytes of the side files given or read so far.
    pub fn len_bytes(&self) -> u64 {
        self.files.values().map(|f| f.len() as u64).sum()
    }

    /// The bytes of the side file at `location`.
    fn get(&mut self, location: &str) -> Result<&[u8]> {
        check_location(location)?;
        if !self.files.contains_key(location) {
            let bytes = match &mut self.loader {
                Some(load) => load(location)?,
                None => return Err(missing(location)),
            };
            self.files.insert(location.to_string(), bytes);
        }
        Ok(self.files.get(location).map(Vec::as_slice).unwrap_or_default())
    }
}

/// The error for a side file that was not given.
pub fn missing(location: &str) -> Error {
    Error::load(format!(
        "the model keeps its weights in the external data file `{location}`, which was not given: keep it next to \
         the .onnx file (command line) or drop or pick both files together (page)"
    ))
}

/// Refuses a location that is not a plain relative path inside the model's directory: absolute,
/// with a drive or a `..` component, or empty.
///
/// # Errors
/// [`Error::Load`] naming the location.
pub fn check_location(location: &str) -> Result<()> {
    let parts: Vec<&str> = location.split(['/', '\\']).collect();
    let bad = location.is_empty()
        || location.starts_with(['/', '\\'])
        || location.contains(':')
        || parts.iter().any(|p| *p == ".." || p.is_empty());
    if bad {
        return Err(Error::load(format!(
            "external data location `{location}` is not a relative path inside the model's directory"
        )));
    }
    Ok(())
}

/// Whether `proto` has any tensor stored in a side file.
pub fn has_external_data(proto: &ModelProto) -> bool {
    let mut found = false;
    for_each_tensor(proto, &mut |t| found |= is_external(t));
    found
}

/// The side files `proto` names, in order of first use.
pub fn locations(proto: &ModelProto) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for_each_tensor(proto, &mut |t| {
        if let Some(loc) = is_external(t).then(|| entry(t, "location")).flatten() {
            if !names.iter().any(|n| n == loc) {
                names.push(loc.to_string());
            }
        }
    });
    names
}

/// Copies the bytes of every external tensor of `proto` from `side` into its `raw_data`.
///
/// # Errors
/// [`Error::Load`] for a side file that is missing or cannot be read, a location outside the
/// model's directory, or an offset and length outside the file, each naming the file.
pub fn inline(proto: &mut ModelProto, side: &mut SideFiles) -> Result<()> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(()) };
    let attrs = graph.node.iter_mut().flat_map(|n| n.attribute.iter_mut()).filter_map(|a| a.t.as_mut());
    for t in graph.initializer.iter_mut().chain(attrs) {
        if is_external(t) {
            inline_one(t, side)?;
        }
    }
    Ok(())
}

fn inline_one(t: &mut TensorProto, side: &mut SideFiles) -> Result<()> {
    let location = entry(t, "location")
        .ok_or_else(|| Error::load(format!("tensor `{}` is external but names no location", t.name)))?
        .to_string();
    let number = |key: &str| -> Result<Option<u64>> {
        entry(t, key)
            .map(|v| v.trim().parse::<u64>())
            .transpose()
            .map_err(|_| Error::load(format!("tensor `{}`: its external data {key} is not a number", t.name)))
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let file = side.get(&location)?;
    let size = file.len() as u64;
    let end = match length {
        Some(l) => offset.checked_add(l),
        None => Some(size),
    };
    let range = match end {
        Some(end) if offset <= end && end <= size => offset as usize..end as usize,
        _ => {
            return Err(Error::load(format!(
                "tensor `{}` reads bytes {offset}..{} of the external data file `{location}`, which has {size} bytes",
                t.name,
                end.map_or("?".to_string(), |e| e.to_string())
            )))
        }
    };
    t.raw_data = file[range].to_vec();
    t.data_location = Some(DataLocation::Default as i32);
    t.external_data.clear();
    Ok(())
}

fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

fn entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str())
}

fn for_each_tensor(proto: &ModelProto, f: &mut impl FnMut(&TensorProto)) {
    let Some(graph) = proto.graph.as_ref() else { return };
    graph.initializer.iter().for_each(&mut *f);
    graph.node.iter().flat_map(|n| &n.attribute).filter_map(|a| a.t.as_ref()).for_each(f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{GraphProto, StringStringEntryProto};

    fn external(name: &str, location: &str, offset: Option<&str>, length: Option<&str>) -> TensorProto {
        let kv = |k: &str, v: &str| StringStringEntryProto { key: k.into(), value: v.into() };
        let mut entries = vec![kv("location", location)];
        entries.extend(offset.map(|o| kv("offset", o)));
        entries.extend(length.map(|l| kv("length", l)));
        TensorProto {
            name: name.into(),
            data_location: Some(DataLocation::External as i32),
            external_data: entries,
            ..Default::default()
        }
    }

    fn model(tensors: Vec<TensorProto>) -> ModelProto {
        ModelProto { graph: Some(GraphProto { initializer: tensors, ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn bytes_are_copied_from_offset_and_length() {
        let mut m = model(vec![
            external("a", "w.data", Some("2"), Some("3")),
            external("b", "w.data", None, None),
            TensorProto { name: "c".into(), raw_data: vec![9], ..Default::default() },
        ]);
        assert!(has_external_data(&m));
        assert_eq!(locations(&m), ["w.data"]);
        let mut side = SideFiles::from_files([("w.data".to_string(), vec![0, 1, 2, 3, 4, 5])]);
        inline(&mut m, &mut side).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.initializer[0].raw_data, [2, 3, 4]);
        assert_eq!(g.initializer[1].raw_data, [0, 1, 2, 3, 4, 5]); // no offset, no length: the whole file
        assert_eq!(g.initializer[2].raw_data, [9]);
        assert!(!has_external_data(&m));
    }

    #[test]
    fn missing_files_and_bad_ranges_name_the_file() {
        let err = |t: TensorProto, files: Vec<(String, Vec<u8>)>| {
            inline(&mut model(vec![t]), &mut SideFiles::from_files(files)).unwrap_err().to_string()
        };
        let e = err(external("a", "m.onnx.data", None, None), vec![]);
        assert!(e.contains("`m.onnx.data`") && e.contains("not given"), "{e}");
        let file = vec![("m.data".to_string(), vec![0u8; 8])];
        let e = err(external("a", "m.data", Some("6"), Some("4")), file.clone());
        assert!(e.contains("bytes 6..10") && e.contains("`m.data`") && e.contains("8 bytes"), "{e}");
        let e = err(external("a", "m.data", Some("9"), None), file.clone());
        assert!(e.contains("`m.data`"), "{e}");
        let e = err(external("a", "m.data", Some("-1"), None), file);
        assert!(e.contains("offset is not a number"), "{e}");
    }

    #[test]
    fn locations_outside_the_model_directory_are_refused() {
        for bad in ["/etc/passwd", "../w.data", "a/../../w.data", "C:\\w.data", "\\\\host\\w", "", "a//b"] {
            assert!(check_location(bad).is_err(), "{bad}");
        }
        for good in ["w.data", "weights/w.data", "model.onnx.data"] {
            check_location(good).unwrap();
        }
    }
}
