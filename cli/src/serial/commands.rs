//! The command-line edge of `tinyvae serial`: argument checks, printing, anyhow.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tinyvae_shared::detect::{scale_units, Calibrator, Term, MIN_CALIBRATION_FRAMES};
use tinyvae_shared::fixed::{q16_from_f64, q16_to_f64};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{DetectorState, DeviceInfo};
use tinyvae_shared::rng::Rng;

use tinyvae_datasets::grid::{grid_image, GridLayout};
use tinyvae_datasets::metrics::auroc;
use tinyvae_datasets::{self as data, Dataset};
use tinyvae_link::boards;
use tinyvae_link::confusion::Confusion;
use tinyvae_link::info::{describe, differences};
use tinyvae_link::serial::DeviceClient;
use tinyvae_shared::model_file;

use super::{
    BenchArgs, CalibrateArgs, EncodeArgs, GenerateArgs, ImageSource, InfoArgs, SerialArgs,
    SerialCommand, SetThresholdArgs,
};

pub(super) fn run(args: &SerialArgs) -> anyhow::Result<()> {
    ensure!(
        args.timeout.is_finite() && args.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let port = resolve_port(&args.port)?;
    let mut client = DeviceClient::open(&port, args.baud)?;
    client.set_timeout(Duration::from_secs_f64(args.timeout));
    match &args.command {
        SerialCommand::Info(a) => info(&mut client, a),
        SerialCommand::Encode(a) => encode(&mut client, a),
        SerialCommand::Monitor(a) => super::monitor::run(&mut client, &port, a),
        SerialCommand::Generate(a) => generate(&mut client, a),
        SerialCommand::Denoise(a) => super::transform::denoise(&mut client, a),
        SerialCommand::Compress(a) => super::transform::compress(&mut client, a),
        SerialCommand::Bench(a) => bench(&mut client, a),
        SerialCommand::SetThreshold(a) => set_threshold(&mut client, a),
        SerialCommand::Calibrate(a) => calibrate(&mut client, a),
        SerialCommand::Detector => {
            let state = client.detector()?;
            print!("{}", detector_table(&state));
            Ok(())
        }
        SerialCommand::Stats => {
            let s = client.stats()?;
            println!(
                "frames {}  errors {}  scored {}  anomalies {}  generated {}  denoised {}  \
                 compressed {}  instructions {}",
                s.frames,
                s.errors,
                s.scored,
                s.anomalies,
                s.generated,
                s.denoised,
                s.compressed,
                s.instructions
            );
            Ok(())
        }
    }
}

/// The port to open: `port` itself, or for `auto` the first serial port whose USB id
/// belongs to a board in [`tinyvae_link::boards::BOARDS`], saying on stderr which one
/// and why (stdout stays the command's output).
fn resolve_port(port: &str) -> anyhow::Result<String> {
    if port != "auto" {
        return Ok(port.to_owned());
    }
    let seen = boards::ports_seen().context("listing the serial ports")?;
    let auto = boards::choose_port(&seen)?;
    eprintln!("{}", auto.explain());
    Ok(auto.chosen.port)
}

fn info(client: &mut DeviceClient, args: &InfoArgs) -> anyhow::Result<()> {
    // Read the model file first: a bad path fails before any device traffic.
    let image = args
        .model
        .as_deref()
        .map(|p| model_file::load(p).map(|f| f.image))
        .transpose()?;
    let info = client.info()?;
    print!("{}", describe(&info));
    let (Some(path), Some(image)) = (&args.model, image) else {
        return Ok(());
    };
    let model = Model::parse(&image).context("model file")?;
    let differences = differences(&info, &model);
    if differences.is_empty() {
        println!("model file        {} matches the device", path.display());
        if model.threshold != info.threshold {
            println!(
                "note: the device's threshold {:.4} differs from the file's {:.4} (set-threshold?)",
                q16_to_f64(info.threshold),
                q16_to_f64(model.threshold)
            );
        }
        Ok(())
    } else {
        bail!(
            "the device does not run {}:\n  {}",
            path.display(),
            differences.join("\n  ")
        )
    }
}

/// Loads an image set the way the trainer does (see [`data::load_split`]: an IDX
/// file with the labels beside it, a folder of IDX files, or an image folder resized to
/// the model's input), keeps at most `limit` images and checks the size.
pub(super) fn load_for_device(
    path: &std::path::Path,
    labels: Option<&std::path::Path>,
    limit: Option<usize>,
    info: &DeviceInfo,
) -> anyhow::Result<Dataset> {
    let size = (
        usize::from(info.input_width),
        usize::from(info.input_height),
    );
    let mut set = match labels {
        Some(labels) => data::idx::load_pair(path, Some(labels))?,
        None => data::load_split(path, data::Split::Test, size)?,
    };
    if let Some(n) = limit {
        if n < set.len() {
            set = set.take(n);
        }
    }
    ensure!(
        (set.width, set.height) == size,
        "{} holds {}x{} images, the device's model takes {}x{}",
        path.display(),
        set.width,
        set.height,
        info.input_width,
        info.input_height
    );
    Ok(set)
}

/// One image to score: its name, label (if known) and whether it is anomalous (if
/// known).
pub(super) struct Item {
    pub name: String,
    pub image: Vec<u8>,
    pub label: Option<String>,
    pub anomalous: Option<bool>,
}

/// The class name of image `i`, if the set is labelled.
fn class_of(set: &Dataset, i: usize) -> Option<String> {
    let label = set.label(i)?;
    Some(
        set.class_names
            .get(label as usize)
            .cloned()
            .unwrap_or_else(|| label.to_string()),
    )
}

/// The images of `source`, sized for the device, in groups: the normal set, then the
/// anomalous set and the corrupted copies when asked for; and whether their truth is
/// known. `encode` sends the groups one after the other, `monitor` interleaves them.
pub(super) fn load_items(
    source: &ImageSource,
    info: &DeviceInfo,
) -> anyhow::Result<(Vec<Vec<Item>>, bool)> {
    let normal = load_for_device(&source.images, source.labels.as_deref(), source.limit, info)?;
    let by_class = !source.anomalous_classes.is_empty();
    ensure!(
        !by_class || normal.labels.is_some(),
        "--anomalous-classes needs labels (--labels, or a labels file beside --images)"
    );
    ensure!(
        !(by_class && source.anomalous.is_some()),
        "use either --anomalous or --anomalous-classes, not both"
    );
    let anomalous = match &source.anomalous {
        Some(path) => Some(load_for_device(path, None, source.limit, info)?),
        None => None,
    };
    let corrupted = source
        .corrupt
        .then(|| data::corrupt::corrupt_dataset(&normal, 0x5eed));
    // Ground truth exists when some images are known anomalous.
    let has_truth = by_class || anomalous.is_some() || corrupted.is_some();

    let mut items = Vec::new();
    let mut groups = Vec::new();
    for i in 0..normal.len() {
        let label = class_of(&normal, i);
        let truth = if by_class {
            label.as_ref().map(|l| source.anomalous_classes.contains(l))
        } else {
            has_truth.then_some(false)
        };
        items.push(Item {
            name: format!("#{i}"),
            image: normal.image_u8(i).to_vec(),
            label,
            anomalous: truth,
        });
    }
    groups.push(std::mem::take(&mut items));
    if let Some(set) = &anomalous {
        for i in 0..set.len() {
            items.push(Item {
                name: format!("anomalous #{i}"),
                image: set.image_u8(i).to_vec(),
                label: class_of(set, i),
                anomalous: Some(true),
            });
        }
    }
    groups.push(std::mem::take(&mut items));
    if let Some((set, kinds)) = &corrupted {
        for (i, kind) in kinds.iter().enumerate() {
            items.push(Item {
                name: format!("#{i} {}", kind.name()),
                image: set.image_u8(i).to_vec(),
                label: class_of(set, i),
                anomalous: Some(true),
            });
        }
    }
    groups.push(items);
    groups.retain(|g| !g.is_empty());
    Ok((groups, has_truth))
}

fn encode(client: &mut DeviceClient, args: &EncodeArgs) -> anyhow::Result<()> {
    let info = client.info()?;
    let (groups, has_truth) = load_items(&args.source, &info)?;
    let items: Vec<Item> = groups.into_iter().flatten().collect();

    let mut scores = Vec::with_capacity(items.len());
    let mut verdicts = Vec::with_capacity(items.len());
    let mut truth = Vec::with_capacity(items.len());
    let mut instructions: u64 = 0;
    if !args.summary {
        println!(
            "image                label  truth       score     recon      kl  detector  fired     verdict"
        );
    }
    // With a fault detector on the device, its score ranks and its verdict counts; the
    // negative ELBO's AUROC is printed beside it.
    let mut elbo_scores = Vec::with_capacity(items.len());
    let mut detector_threshold = None;
    for item in &items {
        let e = client
            .encode(&item.image)
            .with_context(|| format!("encoding image {}", item.name))?;
        instructions += e.instructions;
        elbo_scores.push(f64::from(e.score.score));
        scores.push(f64::from(
            e.score.detector.map_or(e.score.score, |d| d.score),
        ));
        verdicts.push(e.score.flagged());
        detector_threshold = e.score.detector.map(|d| d.threshold);
        if let Some(t) = item.anomalous {
            truth.push(t);
        }
        if !args.summary {
            let t = match item.anomalous {
                Some(true) => "anomalous",
                Some(false) => "normal",
                None => "-",
            };
            let (detector, fired) = match e.score.detector {
                Some(d) => (format!("{:.3}", q16_to_f64(d.score)), d.fired.name()),
                None => ("-".into(), "-"),
            };
            println!(
                "{:<20} {:>5}  {t:<9} {:>9.3} {:>9.3} {:>7.3}  {detector:>8}  {fired:<8}  {}",
                item.name,
                item.label.as_deref().unwrap_or("-"),
                q16_to_f64(e.score.score),
                q16_to_f64(e.score.reconstruction),
                q16_to_f64(e.score.kl),
                if e.score.flagged() { "ANOMALOUS" } else { "ok" }
            );
        }
    }
    let n = scores.len().max(1) as f64;
    let rule = match detector_threshold {
        Some(t) => format!("fault detector, threshold {:.4}", q16_to_f64(t)),
        None => format!("negative ELBO, threshold {:.4}", q16_to_f64(info.threshold)),
    };
    println!(
        "{} images, {} flagged anomalous ({rule}), mean score {:.3}, mean {:.0} instructions per encode",
        scores.len(),
        verdicts.iter().filter(|&&v| v).count(),
        scores.iter().map(|&s| s / 65536.0).sum::<f64>() / n,
        instructions as f64 / n
    );
    if has_truth && truth.len() == scores.len() {
        match (auroc(&scores, &truth), auroc(&elbo_scores, &truth)) {
            (Some(a), Some(elbo)) if scores != elbo_scores => {
                println!("AUROC {a:.4} (fault detector; the negative ELBO alone: {elbo:.4})")
            }
            (Some(a), _) => println!("AUROC {a:.4}"),
            _ => println!("AUROC undefined: the set holds only one class"),
        }
        println!("{}", Confusion::tally(&verdicts, &truth).table());
    }
    Ok(())
}

fn generate(client: &mut DeviceClient, args: &GenerateArgs) -> anyhow::Result<()> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(
        args.columns > 0 && args.scale > 0,
        "--columns and --scale must be at least 1"
    );
    let info = client.info()?;
    let (w, h) = (u32::from(info.input_width), u32::from(info.input_height));
    let temperature = q16_from_f64(args.temperature);
    let mut images = Vec::new();
    for i in 0..args.count {
        let seed = args.seed.wrapping_add(i);
        let g = client
            .generate(seed, temperature)
            .with_context(|| format!("generating seed {seed}"))?;
        ensure!(
            g.image.len() == (w * h) as usize,
            "device returned {} pixels for a {w}x{h} model",
            g.image.len()
        );
        println!("seed {seed}: {} instructions", g.instructions);
        images.push(g.image);
    }
    let layout = GridLayout {
        columns: args.columns as usize,
        scale: args.scale as usize,
        gap: 1,
    };
    let grid = grid_image(&images, w as usize, h as usize, layout);
    grid.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} images to {}", images.len(), args.out.display());
    Ok(())
}

/// min, median, max and mean of a non-empty sample.
fn summary(values: &mut [u64]) -> (u64, u64, u64, f64) {
    values.sort_unstable();
    let n = values.len().max(1);
    let mean = values.iter().sum::<u64>() as f64 / n as f64;
    (
        values.first().copied().unwrap_or(0),
        values.get(values.len() / 2).copied().unwrap_or(0),
        values.last().copied().unwrap_or(0),
        mean,
    )
}

fn bench(client: &mut DeviceClient, args: &BenchArgs) -> anyhow::Result<()> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(args.clock_mhz > 0.0, "--clock-mhz must be positive");
    let info = client.info()?;
    let pixels = usize::from(info.input_width) * usize::from(info.input_height);
    let mut rng = Rng::new(0x7e57);
    let images: Vec<Vec<u8>> = match &args.images {
        Some(path) => {
            let set = load_for_device(path, None, Some(args.count as usize), &info)?;
            (0..set.len()).map(|i| set.image_u8(i).to_vec()).collect()
        }
        None => (0..args.count)
            .map(|_| (0..pixels).map(|_| rng.next_u32() as u8).collect())
            .collect(),
    };
    let mut encode = Vec::new();
    for image in &images {
        encode.push(client.encode(image)?.instructions);
    }
    let mut decode = Vec::new();
    let mut generate = Vec::new();
    for i in 0..args.count {
        let z = tinyvae_shared::pipeline::prior_sample(info.latent.into(), i, 1 << 16);
        decode.push(client.decode(&z)?.instructions);
        generate.push(client.generate(i, 1 << 16)?.instructions);
    }
    println!(
        "instructions per request (QEMU -icount counts instructions; a real Cortex-M3 \
         takes more cycles than instructions)"
    );
    println!(
        "{:<10} {:>5} {:>12} {:>12} {:>12} {:>14}",
        "request", "n", "min", "median", "max", "ms @ clock*"
    );
    for (name, values) in [
        ("encode", &mut encode),
        ("decode", &mut decode),
        ("generate", &mut generate),
    ] {
        let (min, median, max, mean) = summary(values);
        println!(
            "{name:<10} {:>5} {min:>12} {median:>12} {max:>12} {:>14.3}",
            values.len(),
            mean / (args.clock_mhz * 1e3)
        );
    }
    println!(
        "* mean instructions at {} MHz and one instruction per cycle: a lower bound",
        args.clock_mhz
    );
    Ok(())
}

fn set_threshold(client: &mut DeviceClient, args: &SetThresholdArgs) -> anyhow::Result<()> {
    ensure!(args.threshold.is_finite(), "the threshold must be a number");
    let now = client.set_threshold(q16_from_f64(args.threshold))?;
    println!("threshold now {:.4}", q16_to_f64(now));
    Ok(())
}

/// The detector a device reports, as a table.
fn detector_table(state: &DetectorState) -> String {
    let mut out = String::new();
    match &state.params {
        Some(params) => {
            out.push_str(&format!(
                "fault detector: threshold {:.4} on the largest standardized term\n\
                 term     upper edge  scale above  lower edge  scale below\n",
                q16_to_f64(params.threshold)
            ));
            for term in Term::ALL {
                let t = params.terms[term as usize];
                out.push_str(&format!(
                    "{:<8} {:>11} {:>12.2} {:>11} {:>12.2}\n",
                    term.name(),
                    t.high,
                    scale_units(t.scale_high),
                    t.low,
                    scale_units(t.scale_low)
                ));
            }
        }
        None => out.push_str("fault detector: none (the model has none; calibrate one)\n"),
    }
    if state.calibration_left > 0 {
        out.push_str(&format!(
            "calibration under way: {} frames to go\n",
            state.calibration_left
        ));
    }
    out
}

fn calibrate(client: &mut DeviceClient, args: &CalibrateArgs) -> anyhow::Result<()> {
    ensure!(
        args.frames >= MIN_CALIBRATION_FRAMES,
        "--frames must be at least {MIN_CALIBRATION_FRAMES} (two per half)"
    );
    let info = client.info()?;
    let limit = usize::from(args.frames) + args.check;
    let set = load_for_device(&args.images, args.labels.as_deref(), Some(limit), &info)?;
    ensure!(
        set.len() >= limit,
        "{} holds {} images; --frames {} and --check {} need {limit}",
        args.images.display(),
        set.len(),
        args.frames,
        args.check
    );
    let twin = match &args.model {
        Some(path) => {
            let file = model_file::load(path)?;
            let hash = file.model()?.hash;
            ensure!(
                hash == info.model_hash,
                "{} (hash {hash:#010x}) is not the model the device runs ({:#010x})",
                path.display(),
                info.model_hash
            );
            Some(file)
        }
        None => None,
    };
    // The twin starts from the detector the device judges by now.
    let mut host = Calibrator::idle();
    let frames = if args.threshold_only {
        host.start_threshold(args.frames, client.detector()?.params);
        client.calibrate_threshold(args.frames)?
    } else {
        host.start(args.frames);
        client.calibrate(args.frames)?
    };
    ensure!(
        frames == args.frames,
        "the device took {frames} frames, not {}",
        args.frames
    );
    let mut host = twin.as_ref().map(|_| host);
    let mut host_params = None;
    let mut ws = Workspace::new();
    for i in 0..usize::from(frames) {
        client
            .encode(set.image_u8(i))
            .with_context(|| format!("calibration frame {i}"))?;
        if let (Some(file), Some(host)) = (&twin, host.as_mut()) {
            let terms = pipeline::detector_terms(&file.model()?, &mut ws, set.image_u8(i))?;
            host_params = host.add(&terms).or(host_params);
        }
    }
    let state = client.detector()?;
    ensure!(
        state.calibration_left == 0,
        "the device still waits for {} calibration frames",
        state.calibration_left
    );
    println!("calibrated on {frames} frames of {}", args.images.display());
    print!("{}", detector_table(&state));
    if twin.is_some() {
        ensure!(
            host_params.is_some() && state.params == host_params,
            "the device's calibration differs from the host twin's on the same frames"
        );
        println!("the host's twin of the device, calibrated on the same frames: identical");
    }
    if args.check > 0 {
        let mut flagged = 0;
        for i in usize::from(frames)..limit {
            let e = client
                .encode(set.image_u8(i))
                .with_context(|| format!("check image {i}"))?;
            flagged += usize::from(e.score.flagged());
        }
        println!(
            "{flagged} of {} further clean images flagged: false-positive rate {:.2}%",
            args.check,
            100.0 * flagged as f64 / args.check as f64
        );
    }
    Ok(())
}
