//! A generated registry for the scale bench (`bench/scale.py`):
//!
//! ```text
//! synthetic --repos N --tags T    serve N repositories of T tags each on a free loopback
//!                                 port, print its URL on one line, run until killed;
//!                                 GET /_stats answers the request counts
//! ```

use anyhow::{Context, Result, bail};
use ferry_e2e::synthetic::{Shape, Synthetic};

fn main() {
    if let Err(err) = run() {
        eprintln!("synthetic: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut shape = Shape { repos: 0, tags: 0 };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .with_context(|| format!("{flag} needs a number"))?
            .parse()
            .with_context(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--repos" => shape.repos = value,
            "--tags" => shape.tags = value,
            _ => bail!("usage: synthetic --repos N --tags T"),
        }
    }
    let server = Synthetic::start(shape)?;
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
