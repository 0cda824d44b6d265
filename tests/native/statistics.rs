//! The evaluation's statistics: Student-t quantiles against printed tables, intervals against
//! normal theory, the paired bootstrap, and `evaluate --labels --shard` + `merge` end to end.

use resnet_lrp::stats::{paired_bootstrap, summarize, t975};

use crate::models::root;
use crate::session::cli;

/// t₀.₉₇₅ from printed tables (three decimals, so agreement to 6e-4 means the same printed value).
#[test]
fn t_quantiles_match_the_tables() {
    let table = [
        (1, 12.706),
        (2, 4.303),
        (3, 3.182),
        (4, 2.776),
        (5, 2.571),
        (9, 2.262),
        (10, 2.228),
        (20, 2.086),
        (30, 2.042),
        (100, 1.984),
        (1000, 1.962),
    ];
    for (dof, want) in table {
        assert!((t975(dof) - want).abs() < 6e-4, "ν = {dof}: {} vs {want}", t975(dof));
    }
}

#[test]
fn summary_is_the_t_interval_of_the_mean() {
    // mean 3, sample variance 2.5, se = √(2.5 / 5), t₀.₉₇₅(4) = 2.776
    let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(s.mean, 3.0);
    assert!((s.se - 0.5f64.sqrt()).abs() < 1e-12);
    assert!((s.high - (3.0 + 2.776 * 0.5f64.sqrt())).abs() < 1e-3 && (s.low + s.high - 6.0).abs() < 1e-12);
    let one = summarize(&[0.4]);
    assert!(one.mean == 0.4 && one.se.is_nan() && one.low.is_nan());
}

/// The bootstrap distribution of a mean of n paired differences has standard deviation
/// sd(d)·√((n−1)/n)/√n; with 10⁴ resamples its 2.5/97.5 % points sit at ±1.96 of it within a few
/// percent (the Monte-Carlo error of a tail quantile at 10⁴ draws is ~2 %), so a 6 % band
/// catches a wrong scale (e.g. a missing √n, off by 14× here) or a shifted centre.
#[test]
fn paired_bootstrap_interval_has_the_normal_theory_width() {
    let n = 200;
    let a: Vec<f64> = (0..n).map(|i| ((i * 37 % 101) as f64) / 100.0).collect();
    let b: Vec<f64> = (0..n).map(|i| ((i * 53 % 97) as f64) / 120.0).collect();
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let s = summarize(&d);
    let sd_boot = s.se * (((n - 1) as f64) / n as f64).sqrt();
    let r = paired_bootstrap(&a, &b, 10_000, 42).unwrap();
    assert!((r.mean - s.mean).abs() < 1e-12);
    for (got, want) in [(r.low, s.mean - 1.96 * sd_boot), (r.high, s.mean + 1.96 * sd_boot)] {
        assert!((got - want).abs() < 0.06 * 1.96 * sd_boot, "{got} vs {want}");
    }
    // the same seed gives the same interval; differences that never vary give a point
    assert_eq!(paired_bootstrap(&a, &b, 10_000, 42).unwrap(), r);
    let c: Vec<f64> = a.iter().map(|x| x + 0.25).collect();
    let p = paired_bootstrap(&c, &a, 1000, 1).unwrap();
    assert!((p.low - 0.25).abs() < 1e-12 && (p.high - 0.25).abs() < 1e-12);
    assert!(paired_bootstrap(&a, &b[..10], 100, 1).is_err());
}

fn rows(csv: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut rows: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            // the timing columns differ from run to run
            let c: Vec<&str> = l.split(',').collect();
            [&c[..8], &c[10..]].concat().join(",")
        })
        .collect();
    rows.sort();
    rows
}

/// Two shards of a labelled directory, merged, are the unsharded run: the same rows, each image
/// scored for its labelled class; a missing label and a bad shard are errors that say so.
#[test]
fn shards_merge_into_the_whole_run() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-shards-{}", std::process::id()));
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let corpus = root().join("tests/robustness/corpus/images");
    for name in ["rgb.png", "palette.png"] {
        std::fs::copy(corpus.join(name), images.join(name)).unwrap();
    }
    std::fs::copy(corpus.join("rgb.png"), images.join("third.png")).unwrap();
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, "id,file,class,note\n1,rgb.png,3,x\n2,palette.png,7,y\n3,third.png,0,z\n").unwrap();
    let model = root().join("tests/fixtures/basic_bn.onnx");
    let base = |csv: &std::path::Path| -> Vec<String> {
        [
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--images",
            images.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--methods",
            "flows_skip,latest,random",
            "--step",
            "64",
            "--csv",
            csv.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |csv: &std::path::Path, extra: &[&str]| {
        let mut args = base(csv);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = cli(&args);
        assert!(ok, "{err}");
        out
    };
    let whole = dir.join("whole.csv");
    let table = run(&whole, &[]);
    assert!(table.contains("flows_skip − method") && table.contains("bootstrap"), "{table}");
    let (s0, s1, merged) = (dir.join("s0.csv"), dir.join("s1.csv"), dir.join("merged.csv"));
    run(&s0, &["--shard", "0/2"]);
    run(&s1, &["--shard", "1/2"]);
    assert_eq!(rows(&s0).len(), 6, "images 0 and 2 of 3, three methods");
    let (ok, out, err) = cli(&["merge", s0.to_str().unwrap(), s1.to_str().unwrap(), "--csv", merged.to_str().unwrap()]);
    assert!(ok && out.contains("3 images, 3 methods"), "{err}");
    assert_eq!(rows(&merged), rows(&whole));
    // every row is scored for its file's label
    for r in rows(&whole) {
        let c: Vec<&str> = r.split(',').collect();
        let want = match c[0] {
            "rgb.png" => "3",
            "palette.png" => "7",
            _ => "0",
        };
        assert_eq!((c[2], c.last().copied()), (want, Some(want)), "{r}");
    }
    // two copies of one shard are duplicates, not more images
    let (ok, _, err) = cli(&["merge", s0.to_str().unwrap(), s0.to_str().unwrap()]);
    assert!(!ok && err.contains("two rows"), "{err}");
    std::fs::write(&labels, "file,class\nrgb.png,3\n").unwrap();
    let (ok, _, err) = cli(&base(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("has no row"), "{err}");
    let mut bad = base(&whole);
    bad.extend(["--shard".to_string(), "2/2".to_string()]);
    let (ok, _, err) = cli(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("K/N"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
