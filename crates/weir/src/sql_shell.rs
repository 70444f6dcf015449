//! `weir sql`: an interactive shell for the streaming SQL server, like
//! ksqlDB's CLI. It is a client of the REST API only (`/ksql` for
//! statements, `/query-stream` for queries), so it works against any
//! ksqlDB-compatible server.
//!
//! Statements end with `;` and may span lines; `SET`/`UNSET` and
//! `DEFINE`/`UNDEFINE` are kept by the shell and sent with every request
//! (`streamsProperties`, `sessionVariables`), as ksqlDB's CLI does;
//! `RUN SCRIPT 'file'` runs a file's statements. Push queries print rows as
//! they arrive until their `LIMIT` or Ctrl-C.

// What the shell prints to stdout is its interface.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::value::RawValue;
use serde_json::{json, Value as J};
use weir_sql::ast::Statement;

/// Flags of `weir sql`.
#[derive(Debug, Args)]
pub struct SqlShellArgs {
    /// The SQL server's URL.
    #[arg(
        env = "WEIR_SQL_SERVER",
        default_value = "http://127.0.0.1:8088",
        value_name = "URL"
    )]
    server: String,
    /// Run the statements of FILE, then exit (non-zero on the first error).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "execute")]
    file: Option<PathBuf>,
    /// Run these statements, then exit (non-zero on the first error).
    #[arg(long, short = 'e', value_name = "STATEMENTS")]
    execute: Option<String>,
    /// How results are printed.
    #[arg(long, value_enum, ignore_case = true, default_value = "tabular")]
    output: Output,
    /// A variable for `${NAME}` references, as `DEFINE` sets. Repeatable.
    #[arg(long = "define", short = 'd', value_name = "NAME=VALUE")]
    define: Vec<String>,
    /// A property sent with every statement, as `SET` sets. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// User for HTTP basic authentication.
    #[arg(long, short = 'u', env = "WEIR_SQL_USER")]
    user: Option<String>,
    /// Password for HTTP basic authentication.
    #[arg(long, short = 'p', env = "WEIR_SQL_PASSWORD")]
    password: Option<String>,
    /// A CA certificate (PEM) to trust for an https:// server.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Where the interactive history is kept (default: `.weir_sql_history`
    /// in the home directory).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Tabular,
    Json,
}

/// The shell's session: what `SET` and `DEFINE` changed, and the server.
struct Shell {
    http: reqwest::Client,
    server: String,
    auth: Option<(String, Option<String>)>,
    output: Output,
    properties: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
    rt: tokio::runtime::Runtime,
}

/// `weir sql`: runs a file, statements or the interactive loop.
pub fn main(args: SqlShellArgs) -> std::process::ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn pairs(list: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("{flag} {s}: expected NAME=VALUE"))?;
            Ok((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn run(args: SqlShellArgs) -> Result<std::process::ExitCode> {
    let mut http = reqwest::Client::builder();
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let mut shell = Shell {
        http: http.build()?,
        server: args.server.trim_end_matches('/').to_string(),
        auth: args.user.clone().map(|u| (u, args.password.clone())),
        output: args.output,
        properties: pairs(&args.set, "--set")?,
        variables: pairs(&args.define, "--define")?,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let script = match (&args.file, &args.execute) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    if let Some(text) = script {
        let (statements, rest) = split_statements(&text);
        let mut all = statements;
        if !rest.trim().is_empty() {
            all.push(rest);
        }
        for s in all {
            if !shell.statement(&s)? {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    shell.interactive(args.history)?;
    Ok(std::process::ExitCode::SUCCESS)
}

const HELP: &str = "\
Statements end with ';' and may span lines. Besides ksqlDB's statements:
  SET 'property' = 'value';   UNSET 'property';   (sent with every statement)
  DEFINE name = 'value';      UNDEFINE name;      (${name} in statements)
  RUN SCRIPT 'file.sql';      runs a file's statements
  PRINT 'topic' [FROM BEGINNING] [INTERVAL n] [LIMIT n];   a topic's records
  help      this text
  history   the statements entered so far
  output    TABULAR or JSON: how results are printed
  exit      leaves the shell (also Ctrl-D)
Ctrl-C stops a push query, or clears the statement being typed.";

impl Shell {
    fn interactive(&mut self, history: Option<PathBuf>) -> Result<()> {
        use rustyline::error::ReadlineError;
        let history = history.or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".weir_sql_history"))
        });
        let mut editor = rustyline::DefaultEditor::new()?;
        if let Some(h) = &history {
            // A missing history file is the first run.
            let _ = editor.load_history(h);
        }
        match self.get_json("/info") {
            Ok(info) => println!(
                "Weir SQL shell, server {} (version {}).\nType 'help' for help, 'exit' to leave.\n",
                self.server,
                info["KsqlServerInfo"]["version"].as_str().unwrap_or("?")
            ),
            Err(e) => eprintln!(
                "warning: the server at {} does not answer: {e:#}",
                self.server
            ),
        }
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() { "ksql> " } else { "> " };
            match editor.readline(prompt) {
                Ok(line) => {
                    if buffer.is_empty() {
                        let word = line.trim().trim_end_matches(';').to_ascii_lowercase();
                        let mut words = word.split_whitespace();
                        match (words.next(), words.next()) {
                            (Some("exit" | "quit"), None) => break,
                            (Some("help"), None) => {
                                println!("{HELP}");
                                continue;
                            }
                            (Some("history"), None) => {
                                for (i, h) in editor.history().iter().enumerate() {
                                    println!("{:>4}  {h}", i + 1);
                                }
                                continue;
                            }
                            (Some("output"), None) => {
                                println!("Output format: {:?}", self.output);
                                continue;
                            }
                            (Some("output"), Some(f)) => {
                                match Output::from_str(f, true) {
                                    Ok(o) => self.output = o,
                                    Err(_) => {
                                        eprintln!("Unknown output format '{f}': TABULAR or JSON")
                                    }
                                }
                                continue;
                            }
                            (None, _) => continue,
                            _ => {}
                        }
                    }
                    if !buffer.is_empty() {
                        buffer.push('\n');
                    }
                    buffer.push_str(&line);
                    let (statements, rest) = split_statements(&buffer);
                    if statements.is_empty() {
                        continue;
                    }
                    // A statement typed over several lines is one history entry.
                    let entered = buffer[..buffer.len() - rest.len()].trim().to_string();
                    let _ = editor.add_history_entry(entered.as_str());
                    if let Some(h) = &history {
                        let _ = editor.save_history(h);
                    }
                    buffer = rest.trim_start().to_string();
                    for s in statements {
                        if let Err(e) = self.statement(&s) {
                            eprintln!("{e:#}");
                        }
                    }
                }
                Err(ReadlineError::Interrupted) => buffer.clear(),
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        println!("Exiting the Weir SQL shell.");
        Ok(())
    }

    /// Runs one statement; `Ok(false)` when the server refused it (the
    /// message is printed).
    fn statement(&mut self, text: &str) -> Result<bool> {
        let text = text.trim();
        if text.is_empty() || text == ";" {
            return Ok(true);
        }
        // Parsed here only to tell the shell's own statements and queries
        // apart; anything that does not parse goes to the server, whose
        // error (with line and column) is the one to show.
        let parsed = weir_sql::parser::parse_one(text, &self.variables).ok();
        match parsed.map(|p| p.statement) {
            Some(Statement::Set { name, value }) => {
                self.properties.insert(name.clone(), value.clone());
                println!("Successfully changed local property '{name}' to '{value}'. Use the UNSET command to revert your change.");
                Ok(true)
            }
            Some(Statement::Unset(name)) => match self.properties.remove(&name) {
                Some(old) => {
                    println!("Successfully unset local property '{name}' (value '{old}').");
                    Ok(true)
                }
                None => {
                    eprintln!("Cannot unset local property '{name}' which was never set");
                    Ok(false)
                }
            },
            Some(Statement::Define { name, value }) => {
                self.variables.insert(name, value);
                Ok(true)
            }
            Some(Statement::Undefine(name)) => {
                let key = self
                    .variables
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(&name))
                    .cloned();
                match key {
                    Some(k) => {
                        self.variables.remove(&k);
                        Ok(true)
                    }
                    None => {
                        eprintln!("Variable '{name}' is not defined.");
                        Ok(false)
                    }
                }
            }
            Some(Statement::RunScript(path)) => {
                let script = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the script {path}"))?;
                let (statements, rest) = split_statements(&script);
                for s in statements
                    .into_iter()
                    .chain(Some(rest).filter(|r| !r.trim().is_empty()))
                {
                    if !self.statement(&s)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Some(Statement::Select(_)) => self.query(text),
            Some(Statement::Print { .. }) => self.print(text),
            _ => self.ksql(text),
        }
    }

    fn post(&self, path: &str, body: &J) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(format!("{}{path}", self.server))
            .header("Content-Type", "application/vnd.ksql.v1+json")
            .body(body.to_string());
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, p.as_ref());
        }
        req
    }

    fn get_json(&self, path: &str) -> Result<J> {
        let mut req = self.http.get(format!("{}{path}", self.server));
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, p.as_ref());
        }
        self.rt.block_on(async {
            let resp = req.send().await?.error_for_status()?;
            Ok(resp.json::<J>().await?)
        })
    }

    /// A statement through `/ksql`.
    fn ksql(&self, text: &str) -> Result<bool> {
        let body = json!({
            "ksql": text,
            "streamsProperties": self.properties,
            "sessionVariables": self.variables,
        });
        let (status, answer) = self.rt.block_on(async {
            let resp = self
                .post("/ksql", &body)
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {}", self.server))?;
            let status = resp.status();
            let text = resp.text().await?;
            Ok::<_, anyhow::Error>((status, text))
        })?;
        let answer: J = serde_json::from_str(&answer).unwrap_or(J::String(answer));
        if !status.is_success() {
            print_error(&answer);
            return Ok(false);
        }
        if self.output == Output::Json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(true);
        }
        for entity in answer.as_array().into_iter().flatten() {
            print_entity(entity);
        }
        Ok(true)
    }

    /// `PRINT` through `/query`: text lines until its `LIMIT` or Ctrl-C.
    fn print(&self, text: &str) -> Result<bool> {
        let body = json!({"ksql": text, "streamsProperties": self.properties});
        self.rt.block_on(async {
            let mut resp = self
                .post("/query", &body)
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {}", self.server))?;
            if !resp.status().is_success() {
                let text = resp.text().await?;
                print_error(&serde_json::from_str(&text).unwrap_or(J::String(text)));
                return Ok(false);
            }
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            loop {
                let chunk = tokio::select! {
                    c = resp.chunk() => c?,
                    _ = &mut interrupted => {
                        println!("Topic printing ceased");
                        return Ok(true);
                    }
                };
                let Some(chunk) = chunk else { break };
                print!("{}", String::from_utf8_lossy(&chunk));
                let _ = std::io::stdout().flush();
            }
            Ok(true)
        })
    }

    /// A pull or push query through `/query-stream`: rows are printed as
    /// they arrive; Ctrl-C ends a push query.
    fn query(&self, text: &str) -> Result<bool> {
        let body = json!({
            "sql": text,
            "properties": self.properties,
            "sessionVariables": self.variables,
        });
        let output = self.output;
        self.rt.block_on(async {
            let mut resp = self
                .post("/query-stream", &body)
                .header("Accept", "application/vnd.ksqlapi.delimited.v1")
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {}", self.server))?;
            if !resp.status().is_success() {
                let text = resp.text().await?;
                print_error(&serde_json::from_str(&text).unwrap_or(J::String(text)));
                return Ok(false);
            }
            let mut pending = Vec::<u8>::new();
            let mut table: Option<RowPrinter> = None;
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            loop {
                let chunk = tokio::select! {
                    c = resp.chunk() => c?,
                    _ = &mut interrupted => {
                        if let Some(t) = &table { t.close(); }
                        println!("Query terminated");
                        return Ok(true);
                    }
                };
                let Some(chunk) = chunk else { break };
                pending.extend_from_slice(&chunk);
                while let Some(at) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=at).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    // Rows are printed from the server's text, never through
                    // a double, so DECIMALs keep every digit.
                    let is_json = serde_json::from_str::<&RawValue>(line).is_ok();
                    if output == Output::Json && is_json {
                        println!("{line}");
                        continue;
                    }
                    if let (Some(t), Some(cells)) = (&table, row_cells(line)) {
                        t.row(&cells);
                        continue;
                    }
                    let value: J = serde_json::from_str(line).unwrap_or(J::String(line.into()));
                    if output == Output::Json {
                        println!("{value}");
                        continue;
                    }
                    match (&table, value) {
                        (None, header) if header.get("columnNames").is_some() => {
                            let t = RowPrinter::new(&header);
                            t.header();
                            table = Some(t);
                        }
                        (_, other)
                            if other.get("@type").is_some() || other.get("message").is_some() =>
                        {
                            if let Some(t) = &table {
                                t.close();
                            }
                            print_error(&other);
                            return Ok(false);
                        }
                        (_, other) => println!("{other}"),
                    }
                }
            }
            if let Some(t) = &table {
                t.close();
            }
            Ok(true)
        })
    }
}

fn print_error(answer: &J) {
    match answer.get("message").and_then(J::as_str) {
        Some(m) => eprintln!("{m}"),
        None => eprintln!("{answer}"),
    }
}

/// Prints query rows in fixed-width columns as they stream in.
struct RowPrinter {
    widths: Vec<usize>,
    names: Vec<String>,
}

impl RowPrinter {
    fn new(header: &J) -> RowPrinter {
        let names: Vec<String> = header["columnNames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n.as_str().unwrap_or_default().to_string())
            .collect();
        // Rows stream in, so widths cannot follow the data; names and a
        // floor keep most values aligned.
        let widths = names.iter().map(|n| n.chars().count().max(18)).collect();
        RowPrinter { widths, names }
    }

    fn rule(&self) -> String {
        let mut s = String::from("+");
        for w in &self.widths {
            s.push_str(&"-".repeat(*w + 2));
            s.push('+');
        }
        s
    }

    fn line(&self, cells: &[String]) -> String {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(&self.widths) {
            s.push_str(&format!(" {c:<w$} |"));
        }
        s
    }

    fn header(&self) {
        println!("{}", self.rule());
        println!("{}", self.line(&self.names));
        println!("{}", self.rule());
        let _ = std::io::stdout().flush();
    }

    fn row(&self, cells: &[String]) {
        println!("{}", self.line(cells));
        let _ = std::io::stdout().flush();
    }

    fn close(&self) {
        println!("{}", self.rule());
        let _ = std::io::stdout().flush();
    }
}

/// A row line's cells: strings unquoted, every other value (numbers,
/// `null`, nested values) as the server wrote it. `None` when the line is
/// not a JSON array.
fn row_cells(line: &str) -> Option<Vec<String>> {
    let row: Vec<&RawValue> = serde_json::from_str(line).ok()?;
    Some(
        row.iter()
            .map(|v| {
                serde_json::from_str::<String>(v.get()).unwrap_or_else(|_| v.get().to_string())
            })
            .collect(),
    )
}

/// A table sized to its contents, as ksqlDB's CLI prints entities.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        parts.join("|")
    };
    let rule = "-".repeat(
        widths
            .iter()
            .map(|w| w + 3)
            .sum::<usize>()
            .saturating_sub(1),
    );
    let heads: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    println!("{}", line(&heads));
    println!("{rule}");
    for r in rows {
        println!("{}", line(r));
    }
    println!("{rule}");
}

fn s(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Null => String::new(),
        J::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn rows_of(list: &J, fields: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| fields.iter().map(|f| s(&item[*f])).collect())
        .collect()
}

fn print_source(d: &J) {
    println!();
    println!("Name                 : {}", s(&d["name"]));
    if d["extended"].as_bool() == Some(true) {
        println!("Type                 : {}", s(&d["type"]));
        if !s(&d["timestamp"]).is_empty() {
            println!("Timestamp field      : {}", s(&d["timestamp"]));
        }
        println!("Key format           : {}", s(&d["keyFormat"]));
        println!("Value format         : {}", s(&d["valueFormat"]));
        println!(
            "Kafka topic          : {} (partitions: {})",
            s(&d["topic"]),
            s(&d["partitions"])
        );
        println!("Statement            : {}", s(&d["statement"]));
    }
    let fields: Vec<Vec<String>> = d["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let kind = match (f["type"].as_str(), f["headerKey"].as_str()) {
                (Some("KEY"), _) => " (key)".to_string(),
                (Some("SYSTEM"), _) => " (system)".to_string(),
                (Some("HEADER"), Some(k)) => format!(" (header('{k}'))"),
                (Some("HEADER"), None) => " (headers)".to_string(),
                _ => String::new(),
            };
            vec![s(&f["name"]), format!("{}{kind}", type_text(&f["schema"]))]
        })
        .collect();
    print_table(&["Field", "Type"], &fields);
    if d["extended"].as_bool() == Some(true) {
        for (title, key) in [
            ("Queries that read from this", "readQueries"),
            ("Queries that write from this", "writeQueries"),
        ] {
            let q = rows_of(&d[key], &["id", "queryString"]);
            if !q.is_empty() {
                println!("\n{title} {}:", s(&d["type"]));
                print_table(&["Query ID", "Statement"], &q);
            }
        }
        println!("\nLocal runtime statistics\n------------------------");
        println!("{}", [s(&d["statistics"]), s(&d["errorStats"])].join("  "));
    }
    println!("For runtime statistics and query details run: DESCRIBE <Stream,Table> EXTENDED;");
}

/// `{"type":"ARRAY","memberSchema":{"type":"INTEGER"}}` as `ARRAY<INTEGER>`.
fn type_text(schema: &J) -> String {
    let t = s(&schema["type"]);
    match t.as_str() {
        "ARRAY" => format!("ARRAY<{}>", type_text(&schema["memberSchema"])),
        "MAP" => format!("MAP<STRING, {}>", type_text(&schema["memberSchema"])),
        "DECIMAL" => format!(
            "DECIMAL({}, {})",
            schema["parameters"]["precision"], schema["parameters"]["scale"]
        ),
        "STRUCT" => {
            let fields: Vec<String> = schema["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| format!("{} {}", s(&f["name"]), type_text(&f["schema"])))
                .collect();
            format!("STRUCT<{}>", fields.join(", "))
        }
        _ => t,
    }
}

fn print_entity(e: &J) {
    match e["@type"].as_str().unwrap_or_default() {
        "currentStatus" => {
            let mut rows = vec![vec![s(&e["commandStatus"]["message"])]];
            if let Some(q) = e["commandStatus"]["queryId"].as_str() {
                if !rows[0][0].contains(q) {
                    rows[0][0] = format!("{} (query {q})", rows[0][0]);
                }
            }
            print_table(&["Message"], &rows);
        }
        "streams" => print_table(
            &[
                "Stream Name",
                "Kafka Topic",
                "Key Format",
                "Value Format",
                "Windowed",
            ],
            &rows_of(
                &e["streams"],
                &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
            ),
        ),
        "tables" => print_table(
            &[
                "Table Name",
                "Kafka Topic",
                "Key Format",
                "Value Format",
                "Windowed",
            ],
            &rows_of(
                &e["tables"],
                &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
            ),
        ),
        "queries" => print_table(
            &[
                "Query ID",
                "Query Type",
                "Status",
                "Sink Name",
                "Sink Kafka Topic",
                "Query String",
            ],
            &rows_of(
                &e["queries"],
                &[
                    "id",
                    "queryType",
                    "state",
                    "sinks",
                    "sinkKafkaTopics",
                    "queryString",
                ],
            ),
        ),
        "kafka_topics" => {
            let rows: Vec<Vec<String>> = e["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let replicas = t["replicaInfo"].as_array().map_or(0, Vec::len);
                    vec![s(&t["name"]), replicas.to_string()]
                })
                .collect();
            print_table(&["Kafka Topic", "Partitions"], &rows);
        }
        "kafka_topics_extended" => {
            let rows: Vec<Vec<String>> = e["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let replicas = t["replicaInfo"].as_array().map_or(0, Vec::len);
                    vec![
                        s(&t["name"]),
                        replicas.to_string(),
                        s(&t["consumerCount"]),
                        s(&t["consumerGroupCount"]),
                    ]
                })
                .collect();
            print_table(
                &["Kafka Topic", "Partitions", "Consumers", "ConsumerGroups"],
                &rows,
            );
        }
        "properties" => print_table(
            &["Property", "Scope", "Value"],
            &rows_of(&e["properties"], &["name", "scope", "value"]),
        ),
        "function_names" => print_table(
            &["Function Name", "Type", "Category"],
            &rows_of(&e["functions"], &["name", "type", "category"]),
        ),
        "variables" => print_table(
            &["Variable Name", "Value"],
            &rows_of(&e["variables"], &["name", "value"]),
        ),
        "sourceDescription" => print_source(&e["sourceDescription"]),
        "source_descriptions" => {
            for d in e["sourceDescriptions"].as_array().into_iter().flatten() {
                print_source(d);
            }
        }
        "describe_function" => {
            println!("Name        : {}", s(&e["name"]));
            println!("Overview    : {}", s(&e["description"]));
            println!("Type        : {}", s(&e["type"]));
            println!("Variations  :");
            for f in e["functions"].as_array().into_iter().flatten() {
                let args: Vec<String> = f["arguments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| match a.get("name") {
                        Some(n) => format!("{} {}", s(n), s(&a["type"])),
                        None => s(a),
                    })
                    .collect();
                println!("\n\tVariation   : {}({})", s(&e["name"]), args.join(", "));
                println!("\tReturns     : {}", s(&f["returnType"]));
                println!("\tDescription : {}", s(&f["description"]));
            }
        }
        "queryDescription" => {
            let q = &e["queryDescription"];
            println!("ID           : {}", s(&q["id"]));
            println!("Query Type   : {}", s(&q["queryType"]));
            println!("SQL          : {}", s(&q["statementText"]));
            println!("Sources      : {}", s(&q["sources"]));
            println!("Sinks        : {}", s(&q["sinks"]));
            println!("State        : {}", s(&q["state"]));
        }
        _ => println!("{}", serde_json::to_string_pretty(e).unwrap_or_default()),
    }
    for w in e["warnings"].as_array().into_iter().flatten() {
        eprintln!("WARNING: {}", s(&w["message"]));
    }
}

/// Splits `text` into complete statements (each ending with `;`, which a
/// quoted string, identifier or comment does not end) and the unfinished
/// rest.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'`' | b'"') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        // A doubled quote is an escaped one.
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                let s = text[start..=i].trim();
                if s != ";" {
                    out.push(s.to_string());
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let rest = if start < text.len() {
        &text[start..]
    } else {
        ""
    };
    (out, rest.to_string())
}

/// Fails when a statement cannot be split (for tests of the splitter).
#[cfg(test)]
fn split_all(text: &str) -> Result<Vec<String>> {
    let (s, rest) = split_statements(text);
    if !rest.trim().is_empty() {
        anyhow::bail!("unfinished: {rest}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = split_all(
            "SELECT 'a;b' FROM x;\n-- a comment; still\nSHOW `we;ird`;\n/* ; */ LIST TOPICS;",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                "SELECT 'a;b' FROM x;",
                "-- a comment; still\nSHOW `we;ird`;",
                "/* ; */ LIST TOPICS;"
            ]
        );
        let (done, rest) = split_statements("CREATE STREAM s (a INT)\n  WITH (KAFKA_TOPIC='it''s;");
        assert!(done.is_empty());
        assert!(rest.starts_with("CREATE STREAM"));
        let (done, rest) = split_statements("SHOW STREAMS; SHOW TAB");
        assert_eq!(done, vec!["SHOW STREAMS;"]);
        assert_eq!(rest, " SHOW TAB");
    }

    #[test]
    fn row_cells_keep_the_servers_digits() {
        let line =
            r#"[12345678901234567.89,"a \"b\"",null,{"E":-98765432109876543.21},[0.10],true]"#;
        assert_eq!(
            row_cells(line).unwrap(),
            vec![
                "12345678901234567.89",
                "a \"b\"",
                "null",
                r#"{"E":-98765432109876543.21}"#,
                "[0.10]",
                "true"
            ]
        );
        assert_eq!(row_cells(r#"{"columnNames":[]}"#), None);
    }

    #[test]
    fn types_print_as_ksqldb_writes_them() {
        let t = json!({"type": "ARRAY", "memberSchema": {"type": "STRUCT", "fields": [
            {"name": "A", "schema": {"type": "INTEGER"}}]}});
        assert_eq!(type_text(&t), "ARRAY<STRUCT<A INTEGER>>");
        let d = json!({"type": "DECIMAL", "parameters": {"precision": 6, "scale": 2}});
        assert_eq!(type_text(&d), "DECIMAL(6, 2)");
    }
}
