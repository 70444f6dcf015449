//! The planner: a SELECT over the metastore becomes a `Plan` of compiled
//! expressions and one operator shape (projection, aggregation or join),
//! with the output's key and value columns named as ksqlDB names them.

use crate::aggregate::{AggCall, Aggregate};
use crate::ast::{
    AliasedSource, BinOp, Emit, Expr, JoinType, Literal, Query, SelectItem, SourceKind, WindowKind,
};
use crate::catalog::{MetaStore, Source};
use crate::error::{Result, SqlError};
use crate::expr::{compile, literal_value, Node, Scope};
use crate::format::{Codec, Format, RegistryFormat, WindowType};
use crate::functions;
use crate::join::{JoinWindow, Stage};
use crate::types::{SqlType, Value};

/// ksqlDB's default grace period when a window names none (24 hours).
pub const DEFAULT_GRACE_MS: i64 = 24 * 3_600_000;

/// One input of a query.
#[derive(Debug, Clone)]
pub struct Input {
    pub source: Source,
    pub qualifier: String,
    pub key_codec: Codec,
    pub value_codec: Codec,
    /// The row index of the `TIMESTAMP` column, and its format.
    pub timestamp: Option<(usize, Option<String>)>,
}

impl Input {
    fn new(source: &Source, alias: &AliasedSource) -> Result<Input> {
        let timestamp = match &source.timestamp {
            Some((col, fmt)) => Some((
                source
                    .columns()
                    .position(|(n, _)| n == col)
                    .ok_or_else(|| {
                        SqlError::invalid(format!("TIMESTAMP column {col} not found"))
                    })?,
                fmt.clone(),
            )),
            None => None,
        };
        Ok(Input {
            qualifier: alias.qualifier().to_string(),
            key_codec: source.key_codec(),
            value_codec: source.value_codec(),
            source: source.clone(),
            timestamp,
        })
    }

    /// Row layout: key columns, value columns, header columns, ROWTIME, ROWPARTITION,
    /// ROWOFFSET, then WINDOWSTART and WINDOWEND for windowed sources.
    pub fn scope(&self) -> Scope {
        let q = Some(self.qualifier.as_str());
        let mut s = Scope::default();
        for (n, t) in self.source.columns() {
            s.push(q, n, t.clone());
        }
        s.push(q, "ROWTIME", SqlType::Bigint);
        s.push(q, "ROWPARTITION", SqlType::Int);
        s.push(q, "ROWOFFSET", SqlType::Bigint);
        if self.source.window.is_some() {
            s.push(q, "WINDOWSTART", SqlType::Bigint);
            s.push(q, "WINDOWEND", SqlType::Bigint);
        }
        s
    }

    pub fn width(&self) -> usize {
        self.source.rowtime_index() + 3 + if self.source.window.is_some() { 2 } else { 0 }
    }
}

/// One aggregate call of a GROUP BY query.
#[derive(Debug, Clone)]
pub struct AggSpec {
    pub func: &'static Aggregate,
    pub call: AggCall,
    pub arg: Option<Node>,
}

/// A window of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub grace_ms: i64,
    pub retention_ms: i64,
}

impl WindowSpec {
    pub fn window_type(&self) -> WindowType {
        match self.kind {
            WindowKind::Tumbling { .. } => WindowType::Tumbling,
            WindowKind::Hopping { .. } => WindowType::Hopping,
            WindowKind::Session { .. } => WindowType::Session,
        }
    }

    pub fn size(&self) -> Option<i64> {
        match self.kind {
            WindowKind::Tumbling { size_ms } | WindowKind::Hopping { size_ms, .. } => Some(size_ms),
            WindowKind::Session { .. } => None,
        }
    }
}

/// What a repartition topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// A source input's rows (or a table's updates), re-keyed.
    Input(usize),
    /// The rows a join stage emits, re-keyed for the next stage's left
    /// side.
    Stage(usize),
}

/// One repartition topic of a query (see [`Plan::repartitions`]).
#[derive(Debug, Clone)]
pub struct Rekey {
    /// The topic name after the query's prefix.
    pub suffix: String,
    pub feed: Feed,
    /// A join's: the stage and side (0 left, 1 right) its rows enter.
    pub enters: Option<(usize, usize)>,
    /// The key format, with the new key as its column; `None`: the
    /// sink's (an aggregation's result keeps the re-keyed row's key and
    /// partition).
    pub key: Option<Codec>,
}

/// A join key's codec in `codec`'s format: as it is when its single
/// column already has the key's type, else a single column of that type.
/// A registry format then comes unbound: the query registers its schema
/// under the repartition topic's `-key` subject, as ksqlDB does.
fn typed_key(codec: Codec, ty: &SqlType) -> Codec {
    if codec.columns.len() == 1 && codec.columns[0].1 == *ty {
        return codec;
    }
    let format = match codec.format {
        Format::Registry(r) => Format::Registry(RegistryFormat {
            kind: r.kind,
            bound: None,
            framed: r.framed,
        }),
        f => f,
    };
    Codec::new(format, vec![("ROWKEY".to_string(), ty.clone())], false)
}

/// The operator a query runs.
#[derive(Debug, Clone)]
pub enum Op {
    /// Filter and project, row by row (streams), or key by key (tables:
    /// a filtered-out row is a tombstone).
    Select {
        filter: Option<Node>,
        key: Vec<Node>,
        values: Vec<Node>,
    },
    Aggregate {
        filter: Option<Node>,
        group: Vec<Node>,
        aggs: Vec<AggSpec>,
        window: Option<WindowSpec>,
        /// Over the post-aggregation row: group keys, aggregate results,
        /// WINDOWSTART, WINDOWEND, ROWTIME.
        having: Option<Node>,
        values: Vec<Node>,
        emit_final: bool,
    },
    /// A stream (input 0) joined to a table (input 1) on the table's key.
    StreamTable {
        kind: JoinType,
        /// The join expression over the stream row.
        left_key: Node,
        /// Over the joined row (stream row, then table row).
        filter: Option<Node>,
        key: Vec<Node>,
        values: Vec<Node>,
    },
    /// A stream joined to streams (within a time window) and tables (on
    /// their key), one stage per join: input 0 is the first stage's left
    /// side, input `i` the right side of stage `i - 1` (see `join`).
    Joins {
        stages: Vec<Stage>,
        /// The key is synthetic (`ROWKEY`): the joined row ends with it.
        synthetic_key: bool,
        /// Over the joined row (every input's row, in order).
        filter: Option<Node>,
        key: Vec<Node>,
        values: Vec<Node>,
    },
    /// Tables joined one after another on their primary keys (`t1 JOIN
    /// t2 ON ... JOIN t3 ON ...`): stage `i` joins the result so far to
    /// input `i + 1`, with `kinds[i]`. Every stage is keyed by the same
    /// join key, so the result is a table keyed by it.
    TableChain {
        kinds: Vec<JoinType>,
        /// The key is synthetic (`ROWKEY`): the joined row ends with it.
        synthetic_key: bool,
        /// Over the joined row (every input's row, in order).
        filter: Option<Node>,
        key: Vec<Node>,
        values: Vec<Node>,
    },
    /// Two tables (inputs 0 and 1) joined on their primary keys, or a
    /// foreign-key join: an expression over the left row naming the right
    /// table's key. The result is a table keyed by the join key (primary
    /// key joins) or by the left table's key (foreign-key joins).
    TableTable {
        kind: JoinType,
        /// Foreign-key joins: the right table's key from the left row.
        foreign_key: Option<Node>,
        /// The key is synthetic (`ROWKEY`): the joined row ends with it.
        synthetic_key: bool,
        /// Over the joined row (left row, then right row).
        filter: Option<Node>,
        key: Vec<Node>,
        values: Vec<Node>,
    },
}

/// A planned query.
#[derive(Debug, Clone)]
pub struct Plan {
    pub inputs: Vec<Input>,
    pub op: Op,
    pub kind: SourceKind,
    pub key: Vec<(String, SqlType)>,
    pub value: Vec<(String, SqlType)>,
    pub window: Option<WindowSpec>,
    pub limit: Option<u64>,
    pub emit: Emit,
    /// The projection's columns in SELECT order.
    pub order: Vec<Loc>,
}

impl Plan {
    /// Names and types in SELECT order.
    pub fn projection(&self) -> Vec<(String, SqlType)> {
        self.order
            .iter()
            .map(|l| match l {
                Loc::Key(i) => self.key[*i].clone(),
                Loc::Value(i) => self.value[*i].clone(),
            })
            .collect()
    }

    /// A row's values in SELECT order.
    pub fn project(&self, key: &[Value], value: &[Value]) -> Vec<Value> {
        self.order
            .iter()
            .map(|l| match l {
                Loc::Key(i) => key.get(*i).cloned().unwrap_or(Value::Null),
                Loc::Value(i) => value.get(*i).cloned().unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Whether a source declares header columns: only then are records'
    /// headers read.
    pub fn reads_headers(&self) -> bool {
        self.inputs.iter().any(|i| !i.source.headers.is_empty())
    }

    /// Inputs that are tables joined on their key: their rows are state,
    /// rebuilt by replaying their topic (from the beginning, or up to the
    /// committed offsets after a restart).
    pub fn table_inputs(&self) -> Vec<usize> {
        match &self.op {
            Op::StreamTable { .. } => vec![1],
            Op::Joins { stages, .. } => stages
                .iter()
                .enumerate()
                .filter(|(_, s)| s.window.is_none())
                .map(|(i, _)| i + 1)
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_aggregate(&self) -> bool {
        matches!(self.op, Op::Aggregate { .. })
    }

    /// An aggregation over a table: each update undoes the old row's
    /// contribution, so the task keeps the input table's rows.
    pub fn is_table_aggregate(&self) -> bool {
        self.is_aggregate() && self.inputs[0].source.is_table()
    }

    /// Inputs whose rows a restart rebuilds by replaying their topic up to
    /// the committed offsets: joined tables, and an aggregated table (its
    /// aggregates come back from the changelog, its rows from the topic).
    pub fn replayed_inputs(&self) -> Vec<usize> {
        if self.is_table_aggregate() {
            return vec![0];
        }
        self.table_inputs()
    }

    /// The repartition topics of a query that re-keys before a stateful
    /// operator, in a fixed order, named as ksqlDB names them: a `GROUP
    /// BY` over an unwindowed stream on anything but the stream's key
    /// columns (in order), any `GROUP BY` over a table (Kafka Streams'
    /// table `groupBy` always repartitions, sending each update's old and
    /// new row), a stream–table join whose `ON` is not the stream's key,
    /// and each join input not keyed by its join expression: a stream
    /// side of a stream–stream join (`Join-left-repartition`,
    /// `Join-right-repartition`, either or both), the stream side of a
    /// stream–table join (`Join-repartition`), and, in a chain, the rows
    /// a stage emits when the next stage joins them on another
    /// expression (the next stage's left side). A chain's stages are
    /// prefixed as ksqlDB's planner prefixes them: the last stage has no
    /// prefix, the one before `L_`, the one before that `L_L_`. The
    /// re-keyed rows go through the topic, partitioned by the new key,
    /// and the aggregation or join reads them back (Kafka Streams'
    /// `groupBy`, and the join's repartition after ksqlDB's `selectKey`).
    pub fn repartitions(&self) -> Vec<Rekey> {
        let Some(src) = self.inputs.first().map(|i| &i.source) else {
            return Vec::new();
        };
        if src.window.is_some() {
            return Vec::new();
        }
        let single = |suffix: &str, key: Option<Codec>| {
            vec![Rekey {
                suffix: suffix.to_string(),
                feed: Feed::Input(0),
                enters: None,
                key,
            }]
        };
        match &self.op {
            Op::Aggregate { .. } if src.is_table() => single("Aggregate-GroupBy-repartition", None),
            _ if src.is_table() => Vec::new(),
            Op::Aggregate { group, .. } => {
                let by_key = group.len() == src.key.len()
                    && group
                        .iter()
                        .enumerate()
                        .all(|(i, g)| matches!(g, Node::Column(c) if *c == i));
                if by_key {
                    Vec::new()
                } else {
                    single("Aggregate-GroupBy-repartition", None)
                }
            }
            Op::StreamTable { left_key, .. } => {
                if src.key.len() == 1 && matches!(left_key, Node::Column(0)) {
                    Vec::new()
                } else {
                    single("Join-repartition", Some(self.inputs[1].key_codec.clone()))
                }
            }
            Op::Joins { stages, .. } => self.join_rekeys(stages),
            _ => Vec::new(),
        }
    }

    /// The repartition topics of a join (chain): per stage, each side not
    /// keyed by its join expression.
    fn join_rekeys(&self, stages: &[Stage]) -> Vec<Rekey> {
        let keyed = |input: usize, key: &Node| {
            let src = &self.inputs[input].source;
            src.window.is_none() && src.key.len() == 1 && matches!(key, Node::Column(0))
        };
        let mut out = Vec::new();
        // The key codec of the previous stage's result.
        let mut prev: Option<Codec> = None;
        for (s, st) in stages.iter().enumerate() {
            let prefix = "L_".repeat(stages.len() - 1 - s);
            // A later stage's left side is keyed when it joins on either
            // column of the previous stage's join (ksqlDB treats both as
            // the joined result's key).
            let left_keyed = match s {
                0 => keyed(0, &st.left_key),
                _ => {
                    let p = &stages[s - 1];
                    matches!(st.left_key, Node::Column(c)
                        if matches!(p.left_key, Node::Column(x) if x == c)
                            || matches!(p.right_key, Node::Column(x) if x + p.left_width == c))
                }
            };
            let right_keyed = st.window.is_none() || keyed(s + 1, &st.right_key);
            // The previous stage's key codec, the first source's for the
            // first stage.
            let left_codec = prev
                .clone()
                .unwrap_or_else(|| self.inputs[0].key_codec.clone());
            // As ksqlDB resolves a join's key format: the side not
            // re-keyed keeps its own; when both are, the first source's.
            let codec = match (left_keyed, right_keyed) {
                (true, _) => left_codec,
                (false, true) => self.inputs[s + 1].key_codec.clone(),
                (false, false) => {
                    let first = self.inputs[..=s + 1]
                        .iter()
                        .map(|i| &i.key_codec)
                        .find(|c| c.format != Format::None)
                        .map_or(Format::Kafka, |c| c.format.clone());
                    Codec::new(first, Vec::new(), false)
                }
            };
            let codec = typed_key(codec, &st.key_type);
            let side = |n: &str, feed: Feed, side: usize| Rekey {
                suffix: format!("{prefix}Join-{n}repartition"),
                feed,
                enters: Some((s, side)),
                key: Some(codec.clone()),
            };
            let left_feed = match s {
                0 => Feed::Input(0),
                _ => Feed::Stage(s - 1),
            };
            match (left_keyed, right_keyed, st.window.is_some()) {
                (false, _, false) => out.push(side("", left_feed, 0)),
                (false, _, true) => out.push(side("left-", left_feed, 0)),
                _ => {}
            }
            if !right_keyed {
                out.push(side("right-", Feed::Input(s + 1), 1));
            }
            prev = Some(codec);
        }
        out
    }

    /// The partition count of each of [`Plan::repartitions`], given the
    /// inputs' counts, as Kafka Streams sizes them: an aggregation's as
    /// its source; a join side's as the other side's when only one side
    /// re-keys, else the larger of the two (a later stage's left side
    /// counts as its previous stage's partitions).
    pub fn repartition_counts(&self, counts: &[i32]) -> Vec<i32> {
        let rekeys = self.repartitions();
        let count = |i: usize| counts.get(i).copied().unwrap_or(1);
        let Op::Joins { stages, .. } = &self.op else {
            let n = match self.op {
                Op::StreamTable { .. } => count(1),
                _ => count(0),
            };
            return rekeys.iter().map(|_| n).collect();
        };
        let mut per_stage = Vec::new();
        let mut prev = count(0);
        for s in 0..stages.len() {
            let rekeyed = |side| rekeys.iter().any(|r| r.enters == Some((s, side)));
            let (l, r) = (prev, count(s + 1));
            let n = match (rekeyed(0), rekeyed(1)) {
                (false, _) => l,
                (true, false) => r,
                (true, true) => l.max(r),
            };
            per_stage.push(n);
            prev = n;
        }
        rekeys
            .iter()
            .map(|r| r.enters.map_or(count(0), |(s, _)| per_stage[s]))
            .collect()
    }

    /// The suffix of the first repartition topic, if the query re-keys.
    pub fn repartition_suffix(&self) -> Option<String> {
        self.repartitions().into_iter().next().map(|r| r.suffix)
    }

    /// Whether every key's state lives on one input partition number, so
    /// the query splits into one task per partition (as Kafka Streams'
    /// tasks do): projections and filters (no state), aggregations over a
    /// stream by its key or through the repartition topic, aggregations
    /// over a table (always through it), and a stream–table join on the
    /// stream's key (co-partitioned inputs). The other plans run as one
    /// task.
    pub fn partitioned(&self) -> bool {
        let Some(src) = self.inputs.first().map(|i| &i.source) else {
            return false;
        };
        let on_key = |nodes: &[&Node]| {
            nodes.len() == src.key.len()
                && nodes
                    .iter()
                    .enumerate()
                    .all(|(i, n)| matches!(n, Node::Column(c) if *c == i))
        };
        match &self.op {
            Op::Select { .. } => true,
            // Through the repartition topic: the first half's state (a
            // table's rows) is by source partition, the aggregates by
            // repartition partition.
            Op::Aggregate { group, .. } => {
                !self.repartitions().is_empty()
                    || (!src.is_table()
                        && src.window.is_none()
                        && on_key(&group.iter().collect::<Vec<_>>()))
            }
            // On the stream's key, or through `Join-repartition`: the
            // first half by stream partition, the join by repartition
            // partition (the table's), its table versioned so rows read
            // back from other tasks in no time order still meet it as of
            // their time.
            Op::StreamTable { left_key, .. } => {
                src.window.is_none() && (!self.repartitions().is_empty() || on_key(&[left_key]))
            }
            _ => false,
        }
    }

    /// The suffix of the state changelog topic, for operators with state
    /// that only a changelog restores.
    pub fn changelog_suffix(&self) -> Option<&'static str> {
        match self.op {
            Op::Aggregate { .. } => Some("Aggregate-Aggregate-Materialize-changelog"),
            Op::Joins { ref stages, .. } if stages.iter().any(|s| s.window.is_some()) => {
                Some("Join-store-changelog")
            }
            _ => None,
        }
    }

    /// The output's window type and size, as a sink source records it.
    pub fn output_window(&self) -> Option<(WindowType, Option<i64>)> {
        self.window
            .as_ref()
            .map(|w| (w.window_type(), w.size()))
            .or_else(|| match &self.op {
                Op::Select { .. } => self.inputs[0].source.window,
                _ => None,
            })
    }
}

/// Names of output columns: aliases, column names, struct field names,
/// else `KSQL_COL_n`.
struct Namer {
    next: usize,
}

impl Namer {
    fn name(&mut self, expr: &Expr, alias: &Option<String>) -> String {
        if let Some(a) = alias {
            return a.clone();
        }
        match expr {
            Expr::Column { name, .. } => name.clone(),
            Expr::Field { name, .. } => name.clone(),
            _ => {
                let n = format!("KSQL_COL_{}", self.next);
                self.next += 1;
                n
            }
        }
    }
}

/// Structural equality of expressions, ignoring qualifiers that name the
/// same column.
/// A join's output key: the first of `candidates` (the viable keys, in
/// ksqlDB's order) that the projection has, as ksqlDB's planner picks it;
/// a query without a sink (a push query) may leave it out, and then keys
/// by the first.
fn join_key(
    items: &[Item],
    candidates: &[&Expr],
    what: &str,
    scope: &Scope,
    sink: Option<&str>,
) -> Result<Expr> {
    let found = candidates
        .iter()
        .find_map(|c| items.iter().find(|i| same_expr(&i.expr, c, scope)));
    if found.is_none() && sink.is_some() {
        // ksqlDB resolves the projection (unknown functions, columns)
        // before it looks for the key.
        for i in items {
            compile(&i.expr, scope, "SELECT")?;
        }
    }
    match found {
        Some(i) => Ok(i.expr.clone()),
        None if sink.is_none() => Ok(candidates[0].clone()),
        None if what == SYNTHETIC => Err(SqlError::invalid(format!(
            "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build {} must include the join expression {k} in its projection (eg, SELECT {k}...).\n{k} was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased.",
            sink.unwrap_or_default(),
            k = candidates[0],
        ))),
        None => Err(SqlError::invalid(format!(
            "Key missing from projection (ie, SELECT).\nThe query used to build {} must include the {what} {} in its projection (eg, SELECT {}...).",
            sink.unwrap_or_default(),
            candidates[0],
            candidates[0]
        ))),
    }
}

/// ksqlDB's viable key columns of a chain of joins (`JoinTree`'s
/// `viableKeyColumns` over its left-deep tree): the column references
/// among the joins' expressions that equal the result's key, in join
/// order, left side before right. A FULL join's key equals neither side
/// (either may be missing), so a chain ending in one has none, and the
/// joins before it stop counting; so do the joins before one whose sides
/// are none of theirs. None: the key is synthetic.
fn viable_keys(joins: &[(JoinType, Expr, Expr)], scope: &Scope) -> Vec<Expr> {
    let contains = |set: &[Expr], e: &Expr| set.iter().any(|x| same_expr(x, e, scope));
    let mut equivalent: Vec<Expr> = Vec::new();
    let mut viable: Vec<Expr> = Vec::new();
    for (kind, le, re) in joins {
        if *kind == JoinType::Full {
            equivalent.clear();
            viable.clear();
            continue;
        }
        let sides = [le.clone(), re.clone()];
        let mut next = sides.to_vec();
        if sides.iter().any(|k| contains(&equivalent, k)) {
            next.append(&mut equivalent);
        }
        let mut v: Vec<Expr> = Vec::new();
        for e in viable.iter().chain(&sides) {
            if matches!(e, Expr::Column { .. }) && contains(&next, e) && !contains(&v, e) {
                v.push(e.clone());
            }
        }
        equivalent = next;
        viable = v;
    }
    viable
}

/// `join_key`'s `what` for a synthetic key (ksqlDB's message differs).
const SYNTHETIC: &str = "synthetic join key";

/// The synthetic key column of a join whose result key is no source's
/// column: a FULL OUTER join (either side may be missing, so the key is
/// the first non-null of the two) or a join on expressions of both sides.
/// ksqlDB names it `ROWKEY`, or `ROWKEY_1`, `ROWKEY_2`... when a source
/// already has that column. Its scope column follows every input's
/// columns, where the task appends the key to the joined row.
fn synthetic_key(inputs: &[Input], ty: SqlType, scope: &mut Scope) -> Expr {
    let taken = |n: &str| {
        inputs
            .iter()
            .any(|i| i.source.columns().any(|(c, _)| c == n))
    };
    let mut name = "ROWKEY".to_string();
    let mut n = 0;
    while taken(&name) {
        n += 1;
        name = format!("ROWKEY_{n}");
    }
    scope.push(None, &name, ty);
    Expr::Column {
        qualifier: None,
        name,
    }
}

fn same_expr(a: &Expr, b: &Expr, scope: &Scope) -> bool {
    match (a, b) {
        (
            Expr::Column {
                qualifier: qa,
                name: na,
            },
            Expr::Column {
                qualifier: qb,
                name: nb,
            },
        ) => {
            na == nb
                && match (
                    scope.resolve(qa.as_deref(), na, ""),
                    scope.resolve(qb.as_deref(), nb, ""),
                ) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => qa == qb,
                }
        }
        _ => a == b,
    }
}

/// One projected item.
struct Item {
    name: String,
    expr: Expr,
}

fn expand_select(
    query: &Query,
    inputs: &[Input],
    joined: bool,
    synthetic: Option<&Expr>,
) -> Result<Vec<Item>> {
    let mut namer = Namer { next: 0 };
    let mut items = Vec::new();
    for item in &query.select {
        match item {
            SelectItem::Wildcard(q) => {
                // `*` over a join with a synthetic key starts with it.
                if let (None, Some(k @ Expr::Column { name, .. })) = (q, synthetic) {
                    items.push(Item {
                        name: name.clone(),
                        expr: k.clone(),
                    });
                }
                let mut any = false;
                for input in inputs {
                    if q.as_ref().is_some_and(|q| *q != input.qualifier) {
                        continue;
                    }
                    any = true;
                    for (n, _) in input.source.columns() {
                        let name = if joined {
                            format!("{}_{n}", input.qualifier)
                        } else {
                            n.clone()
                        };
                        items.push(Item {
                            name,
                            expr: Expr::Column {
                                qualifier: Some(input.qualifier.clone()),
                                name: n.clone(),
                            },
                        });
                    }
                    if input.source.window.is_some() && !joined && !query.group_by.is_empty() {
                        continue;
                    }
                }
                if !any {
                    return Err(SqlError::invalid(format!(
                        "Source '{}' in {}.* is not known.",
                        q.clone().unwrap_or_default(),
                        q.clone().unwrap_or_default()
                    )));
                }
            }
            SelectItem::Expr { expr, alias } => {
                let name = namer.name(expr, alias);
                items.push(Item {
                    name,
                    expr: expr.clone(),
                });
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in &items {
        if !seen.insert(i.name.clone()) {
            return Err(SqlError::invalid(format!(
                "Duplicate value columns found in schema: `{}`",
                i.name
            )));
        }
    }
    Ok(items)
}

/// Where a projected column lives in an output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Key(usize),
    Value(usize),
}

/// The columns of a split projection.
type Split = (Vec<(String, Expr)>, Vec<(String, Expr)>, Vec<Loc>);

/// Splits the projection into key columns (items matching `keys`, in
/// order) and value columns, and records the projection order. A
/// persistent query must project each key; a transient one (a push
/// query) need not, and then keys it does not show are hidden.
fn split_key(items: Vec<Item>, keys: &[Expr], scope: &Scope, sink: Option<&str>) -> Result<Split> {
    let mut key_cols = Vec::new();
    let mut used = vec![None; items.len()];
    for (ki, k) in keys.iter().enumerate() {
        let pos = items
            .iter()
            .enumerate()
            .position(|(i, item)| used[i].is_none() && same_expr(&item.expr, k, scope));
        match (pos, sink) {
            (Some(p), _) => {
                used[p] = Some(ki);
                key_cols.push((items[p].name.clone(), items[p].expr.clone()));
            }
            (None, None) => key_cols.push((format!("__K{ki}"), k.clone())),
            (None, Some(sink)) => {
                return Err(SqlError::invalid(format!(
                    "Key missing from projection (ie, SELECT).\nThe query used to build {sink} must include the {} {k} in its projection (eg, SELECT {k}...).",
                    if keys.len() > 1 { "key columns" } else { "key column" }
                )))
            }
        }
    }
    let mut values = Vec::new();
    let mut order = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match used[i] {
            Some(k) => order.push(Loc::Key(k)),
            None => {
                order.push(Loc::Value(values.len()));
                values.push((item.name, item.expr));
            }
        }
    }
    Ok((key_cols, values, order))
}

/// Compiled expressions and the columns they make.
type Compiled = (Vec<Node>, Vec<(String, SqlType)>);

fn compile_all(exprs: &[(String, Expr)], scope: &Scope, clause: &str) -> Result<Compiled> {
    let mut nodes = Vec::new();
    let mut cols = Vec::new();
    for (name, e) in exprs {
        let t = compile(e, scope, clause)?;
        nodes.push(t.node);
        cols.push((name.clone(), t.ty));
    }
    Ok((nodes, cols))
}

fn boolean(e: &Expr, scope: &Scope, clause: &str) -> Result<Node> {
    let t = compile(e, scope, clause)?;
    if t.ty != SqlType::Boolean {
        return Err(SqlError::invalid(format!(
            "Type error in {clause} expression: Should evaluate to boolean but is {e} ({}) instead.",
            t.ty
        )));
    }
    Ok(t.node)
}

fn contains_aggregate(e: &Expr) -> bool {
    let mut found = false;
    visit(e, &mut |x| {
        if let Expr::Function { name, .. } = x {
            if functions::aggregate(name).is_some() {
                found = true;
            }
        }
    });
    found
}

fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Binary { left, right, .. } => {
            visit(left, f);
            visit(right, f);
        }
        Expr::Not(x) | Expr::Negate(x) => visit(x, f),
        Expr::IsNull { expr, .. } => visit(expr, f),
        Expr::Like { expr, pattern, .. } => {
            visit(expr, f);
            visit(pattern, f);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            visit(expr, f);
            visit(low, f);
            visit(high, f);
        }
        Expr::InList { expr, list, .. } => {
            visit(expr, f);
            list.iter().for_each(|x| visit(x, f));
        }
        Expr::Case {
            operand,
            whens,
            else_,
        } => {
            if let Some(o) = operand {
                visit(o, f);
            }
            for (w, t) in whens {
                visit(w, f);
                visit(t, f);
            }
            if let Some(x) = else_ {
                visit(x, f);
            }
        }
        Expr::Cast { expr, .. } => visit(expr, f),
        Expr::Function { args, .. } | Expr::ArrayCtor(args) => {
            args.iter().for_each(|x| visit(x, f))
        }
        Expr::Lambda { body, .. } => visit(body, f),
        Expr::Subscript { base, index } => {
            visit(base, f);
            visit(index, f);
        }
        Expr::Field { base, .. } => visit(base, f),
        Expr::MapCtor(entries) => {
            for (k, v) in entries {
                visit(k, f);
                visit(v, f);
            }
        }
        Expr::StructCtor(fields) => fields.iter().for_each(|(_, x)| visit(x, f)),
        Expr::Literal(_) | Expr::Column { .. } | Expr::LambdaVar(_) => {}
    }
}

/// Plans `query`; `sink` names the target of a persistent query (`None`
/// for a transient query).
pub fn plan(query: &Query, meta: &MetaStore, sink: Option<&str>) -> Result<Plan> {
    let first = meta.get(&query.from.first.name)?;
    let mut inputs = vec![Input::new(first, &query.from.first)?];
    if query.from.joins.len() > 1 {
        for join in &query.from.joins {
            let right = meta.get(&join.right.name)?;
            if inputs.iter().any(|i| i.qualifier == join.right.qualifier()) {
                return Err(SqlError::invalid(format!(
                    "Can not join '{}': each source of a join needs its own alias",
                    right.name
                )));
            }
            inputs.push(Input::new(right, &join.right)?);
        }
        if inputs[0].source.is_table() {
            return plan_table_chain(query, inputs, sink);
        }
        return plan_joins(query, inputs, sink);
    }
    if let Some(join) = query.from.joins.first() {
        let right = meta.get(&join.right.name)?;
        if join.right.qualifier() == inputs[0].qualifier {
            return Err(SqlError::invalid(format!(
                "Can not join '{}' to '{}': self joins need an alias on each side",
                right.name, first.name
            )));
        }
        inputs.push(Input::new(right, &join.right)?);
        return plan_join(query, inputs, sink);
    }
    let input = &inputs[0];
    let scope = input.scope();
    let filter = match &query.where_ {
        Some(w) => {
            if contains_aggregate(w) {
                return Err(SqlError::invalid(
                    "Aggregate functions can not be used in the WHERE clause: use HAVING",
                ));
            }
            Some(boolean(w, &scope, "WHERE")?)
        }
        None => None,
    };
    let items = expand_select(query, &inputs, false, None)?;
    let aggregating =
        !query.group_by.is_empty() || items.iter().any(|i| contains_aggregate(&i.expr));
    if aggregating {
        return plan_aggregate(query, inputs, items, filter, sink);
    }
    if query.window.is_some() {
        return Err(SqlError::invalid(
            "WINDOW clause requires a GROUP BY clause.",
        ));
    }
    if query.having.is_some() {
        return Err(SqlError::invalid(
            "HAVING clause requires a GROUP BY clause.",
        ));
    }
    let source = &input.source;
    let keys: Vec<Expr> = if query.partition_by.is_empty() {
        source
            .key
            .iter()
            .map(|(n, _)| Expr::Column {
                qualifier: Some(input.qualifier.clone()),
                name: n.clone(),
            })
            .collect()
    } else {
        if source.is_table() {
            return Err(SqlError::invalid(
                "Invalid Partition By clause: PARTITION BY is not supported on tables; use GROUP BY to re-key a table",
            ));
        }
        // PARTITION BY NULL: no key.
        query
            .partition_by
            .iter()
            .filter(|e| !matches!(e, Expr::Literal(Literal::Null)))
            .cloned()
            .collect()
    };
    // A PARTITION BY expression that is not projected is added as a key
    // column under its own name, as ksqlDB does.
    let mut items = items;
    if !query.partition_by.is_empty() {
        for k in &keys {
            if !items.iter().any(|i| same_expr(&i.expr, k, &scope)) {
                let name = match k {
                    Expr::Column { name, .. } | Expr::Field { name, .. } => name.clone(),
                    _ => format!("KSQL_COL_{}", items.len()),
                };
                items.insert(
                    0,
                    Item {
                        name,
                        expr: k.clone(),
                    },
                );
            }
        }
    }
    let (key_exprs, value_exprs, order) = split_key(items, &keys, &scope, sink)?;
    let (key, key_cols) = compile_all(&key_exprs, &scope, "PARTITION BY")?;
    let (values, value_cols) = compile_all(&value_exprs, &scope, "SELECT")?;
    Ok(Plan {
        order,
        kind: source.kind,
        window: None,
        op: Op::Select {
            filter,
            key,
            values,
        },
        key: key_cols,
        value: value_cols,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

fn plan_aggregate(
    query: &Query,
    inputs: Vec<Input>,
    items: Vec<Item>,
    filter: Option<Node>,
    sink: Option<&str>,
) -> Result<Plan> {
    let input = &inputs[0];
    let scope = input.scope();
    if query.group_by.is_empty() {
        return Err(SqlError::invalid(
            "Aggregate functions need a GROUP BY clause in a streaming query",
        ));
    }
    if !query.partition_by.is_empty() {
        return Err(SqlError::invalid(
            "PARTITION BY and GROUP BY in the same query are not supported",
        ));
    }
    if input.source.is_table() && query.window.is_some() {
        return Err(SqlError::invalid(
            "Windowing not supported for table aggregations.",
        ));
    }
    let window = query.window.as_ref().map(|w| WindowSpec {
        kind: w.kind.clone(),
        grace_ms: w.grace_ms.unwrap_or(DEFAULT_GRACE_MS),
        retention_ms: w.retention_ms.unwrap_or(0),
    });
    if query.emit == Emit::Final && window.is_none() {
        return Err(SqlError::invalid(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    let mut group = Vec::new();
    let mut post = Scope::default();
    for (i, g) in query.group_by.iter().enumerate() {
        if contains_aggregate(g) {
            return Err(SqlError::invalid(
                "GROUP BY does not support aggregate functions",
            ));
        }
        let t = compile(g, &scope, "GROUP BY")?;
        group.push(t.node);
        post.push(None, &format!("__G{i}"), t.ty);
    }
    // Rewrite the projection and HAVING over the post-aggregation row.
    let mut aggs: Vec<(Expr, AggSpec)> = Vec::new();
    let mut rewrite_err = None;
    let mut rewrite = |e: &Expr, aggs: &mut Vec<(Expr, AggSpec)>| -> Expr {
        rewrite_post(e, &query.group_by, &scope, aggs, &mut rewrite_err)
    };
    let keys: Vec<Expr> = (0..query.group_by.len())
        .map(|i| Expr::col(&format!("__G{i}")))
        .collect();
    let mut rewritten = Vec::new();
    for item in items {
        let e = rewrite(&item.expr, &mut aggs);
        rewritten.push(Item {
            name: item.name,
            expr: e,
        });
    }
    let having_expr = query.having.as_ref().map(|h| rewrite(h, &mut aggs));
    if let Some(e) = rewrite_err {
        return Err(e);
    }
    for (i, (_, spec)) in aggs.iter().enumerate() {
        let ty = (spec.func.ret)(&spec.call)
            .map_err(|why| SqlError::invalid(format!("Function '{}' {why}", spec.func.name)))?;
        post.push(None, &format!("__A{i}"), ty);
    }
    if input.source.is_table() {
        // A table update takes back the old row's contribution, so every
        // aggregate must be able to undo (ksqlDB's TableAggregationFunction).
        let mut cannot: Vec<&str> = Vec::new();
        for (_, spec) in &aggs {
            if spec.func.undo.is_none() && !cannot.contains(&spec.func.name) {
                cannot.push(spec.func.name);
            }
        }
        if !cannot.is_empty() {
            return Err(SqlError::invalid(format!(
                "The aggregation function{} {} cannot be applied to a table source, only to a stream source.",
                if cannot.len() == 1 { "" } else { "s" },
                and_list(&cannot)
            )));
        }
    }
    post.push(None, "WINDOWSTART", SqlType::Bigint);
    post.push(None, "WINDOWEND", SqlType::Bigint);
    post.push(None, "ROWTIME", SqlType::Bigint);
    let post_scope = post;
    // Non-aggregated columns must be grouped.
    for item in &rewritten {
        let mut bad = None;
        visit(&item.expr, &mut |x| {
            if let Expr::Column { name, .. } = x {
                if post_scope.resolve(None, name, "").is_err() && bad.is_none() {
                    bad = Some(name.clone());
                }
            }
        });
        if let Some(b) = bad {
            return Err(SqlError::invalid(format!(
                "Non-aggregate SELECT expression(s) not part of GROUP BY: {b}\nEither add the column to the GROUP BY or remove it from the SELECT."
            )));
        }
    }
    let (key_exprs, value_exprs, order) = split_key(rewritten, &keys, &post_scope, sink).map_err(|_| {
        SqlError::invalid(format!(
            "Key missing from projection (ie, SELECT).\nThe query used to build {} must include the grouping expressions {} in its projection (eg, SELECT {}...).",
            sink.unwrap_or_default(),
            query.group_by.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", "),
            query.group_by.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", "),
        ))
    })?;
    let (_, key_cols) = compile_all(&key_exprs, &post_scope, "GROUP BY")?;
    let (values, value_cols) = compile_all(&value_exprs, &post_scope, "SELECT")?;
    let having = match &having_expr {
        Some(h) => Some(boolean(h, &post_scope, "HAVING")?),
        None => None,
    };
    Ok(Plan {
        order,
        kind: SourceKind::Table,
        op: Op::Aggregate {
            filter,
            group,
            aggs: aggs.into_iter().map(|(_, s)| s).collect(),
            window: window.clone(),
            having,
            values,
            emit_final: query.emit == Emit::Final,
        },
        key: key_cols,
        value: value_cols,
        window,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

/// "A", "A and B", "A, B and C".
fn and_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

/// Replaces group-by expressions with `__Gi` and aggregate calls with
/// `__Aj` (registering them).
fn rewrite_post(
    e: &Expr,
    group_by: &[Expr],
    scope: &Scope,
    aggs: &mut Vec<(Expr, AggSpec)>,
    err: &mut Option<SqlError>,
) -> Expr {
    if let Some(i) = group_by.iter().position(|g| same_expr(g, e, scope)) {
        return Expr::col(&format!("__G{i}"));
    }
    if let Expr::Function { name, args, star } = e {
        if let Some(func) = functions::aggregate(name) {
            if let Some(j) = aggs.iter().position(|(x, _)| x == e) {
                return Expr::col(&format!("__A{j}"));
            }
            match agg_spec(func, args, *star, scope) {
                Ok(spec) => aggs.push((e.clone(), spec)),
                Err(x) => {
                    err.get_or_insert(x);
                }
            }
            return Expr::col(&format!("__A{}", aggs.len().saturating_sub(1)));
        }
    }
    let mut r = |x: &Expr| rewrite_post(x, group_by, scope, aggs, err);
    match e {
        Expr::Binary { op, left, right } => Expr::Binary {
            op: *op,
            left: Box::new(r(left)),
            right: Box::new(r(right)),
        },
        Expr::Not(x) => Expr::Not(Box::new(r(x))),
        Expr::Negate(x) => Expr::Negate(Box::new(r(x))),
        Expr::IsNull { expr, negated } => Expr::IsNull {
            expr: Box::new(r(expr)),
            negated: *negated,
        },
        Expr::Cast { expr, ty } => Expr::Cast {
            expr: Box::new(r(expr)),
            ty: ty.clone(),
        },
        Expr::Function { name, args, star } => Expr::Function {
            name: name.clone(),
            args: args.iter().map(&mut r).collect(),
            star: *star,
        },
        Expr::Case {
            operand,
            whens,
            else_,
        } => Expr::Case {
            operand: operand.as_ref().map(|o| Box::new(r(o))),
            whens: whens.iter().map(|(w, t)| (r(w), r(t))).collect(),
            else_: else_.as_ref().map(|x| Box::new(r(x))),
        },
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => Expr::Between {
            expr: Box::new(r(expr)),
            low: Box::new(r(low)),
            high: Box::new(r(high)),
            negated: *negated,
        },
        Expr::InList {
            expr,
            list,
            negated,
        } => Expr::InList {
            expr: Box::new(r(expr)),
            list: list.iter().map(&mut r).collect(),
            negated: *negated,
        },
        Expr::Like {
            expr,
            pattern,
            escape,
            negated,
        } => Expr::Like {
            expr: Box::new(r(expr)),
            pattern: Box::new(r(pattern)),
            escape: *escape,
            negated: *negated,
        },
        Expr::Subscript { base, index } => Expr::Subscript {
            base: Box::new(r(base)),
            index: Box::new(r(index)),
        },
        Expr::Field { base, name } => Expr::Field {
            base: Box::new(r(base)),
            name: name.clone(),
        },
        Expr::ArrayCtor(items) => Expr::ArrayCtor(items.iter().map(&mut r).collect()),
        Expr::Column { name, .. }
            if name == "WINDOWSTART" || name == "WINDOWEND" || name == "ROWTIME" =>
        {
            Expr::col(name)
        }
        other => other.clone(),
    }
}

fn agg_spec(func: &'static Aggregate, args: &[Expr], star: bool, scope: &Scope) -> Result<AggSpec> {
    if star {
        if !func.star {
            return Err(SqlError::invalid(format!(
                "{}(*) is not allowed",
                func.name
            )));
        }
        return Ok(AggSpec {
            func,
            call: AggCall {
                arg_type: None,
                params: Vec::new(),
            },
            arg: None,
        });
    }
    let Some((first, rest)) = args.split_first() else {
        return Err(SqlError::invalid(format!(
            "Function '{}' needs an argument",
            func.name
        )));
    };
    if rest.len() < func.params.0 || rest.len() > func.params.1 {
        return Err(SqlError::invalid(format!(
            "Function '{}' does not accept {} parameters",
            func.name,
            args.len()
        )));
    }
    let mut params = Vec::new();
    for p in rest {
        match p {
            Expr::Literal(l) => params.push(literal_value(l).0),
            other => {
                return Err(SqlError::invalid(format!(
                    "Parameter {other} of {} must be a literal",
                    func.name
                )))
            }
        }
    }
    let t = compile(first, scope, "SELECT")?;
    Ok(AggSpec {
        func,
        call: AggCall {
            arg_type: Some(t.ty),
            params,
        },
        arg: Some(t.node),
    })
}

fn plan_join(query: &Query, inputs: Vec<Input>, sink: Option<&str>) -> Result<Plan> {
    let join = &query.from.joins[0];
    let (left, right) = (&inputs[0], &inputs[1]);
    if left.source.is_table() && right.source.is_table() {
        return plan_table_join(query, inputs, sink);
    }
    if left.source.is_table() {
        return Err(SqlError::invalid(format!(
            "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {} [TABLE] {:?} JOIN {} [STREAM].",
            left.source.name, join.kind, right.source.name
        )));
    }
    if !right.source.is_table() {
        return plan_joins(query, inputs, sink);
    }
    if join.within.is_some() {
        return Err(SqlError::invalid(
            "WITHIN is only allowed for stream-stream joins, not for a stream-table join",
        ));
    }
    if !matches!(join.kind, JoinType::Inner | JoinType::Left) {
        return Err(SqlError::invalid(format!(
            "Invalid join type: {:?} join is not supported for stream-table joins, only INNER and LEFT",
            join.kind
        )));
    }
    if !query.group_by.is_empty() || query.window.is_some() || !query.partition_by.is_empty() {
        return Err(SqlError::invalid(
            "GROUP BY, WINDOW and PARTITION BY over a join are not supported by Weir yet",
        ));
    }
    let mut scope = left.scope();
    let right_scope = right.scope();
    scope.columns.extend(right_scope.columns.iter().cloned());
    let left_scope = left.scope();
    let Expr::Binary {
        op: BinOp::Eq,
        left: a,
        right: b,
    } = &join.on
    else {
        return Err(SqlError::invalid(format!(
            "Unsupported join expression: {}. Joins need an equality of a column of each side",
            join.on
        )));
    };
    let right_key = right
        .source
        .key
        .first()
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let is_right_key = |e: &Expr| match e {
        Expr::Column { qualifier, name } => {
            *name == right_key
                && scope
                    .resolve(qualifier.as_deref(), name, "")
                    .is_ok_and(|i| i >= left_scope.columns.len())
        }
        _ => false,
    };
    let (stream_expr, table_expr) = if is_right_key(b) {
        (a.as_ref(), b.as_ref())
    } else if is_right_key(a) {
        (b.as_ref(), a.as_ref())
    } else {
        return Err(SqlError::invalid(format!(
            "Invalid join condition: stream-table joins require the table's PRIMARY KEY on one side. Got {}.",
            join.on
        )));
    };
    let lk = compile(stream_expr, &left_scope, "JOIN").map_err(|_| {
        SqlError::invalid(format!(
            "Invalid join condition: {stream_expr} must be an expression over {}",
            left.qualifier
        ))
    })?;
    let right_ty = &right.source.key[0].1;
    if lk.ty != *right_ty {
        return Err(SqlError::invalid(format!(
            "Invalid join condition: types don't match. Got {stream_expr}{{{}}} = {table_expr}{{{right_ty}}}.",
            lk.ty
        )));
    }
    let filter = match &query.where_ {
        Some(w) => Some(boolean(w, &scope, "WHERE")?),
        None => None,
    };
    let items = expand_select(query, &inputs, true, None)?;
    // The table's key is a column, so some column is always viable.
    let viable = viable_keys(
        &[(join.kind, stream_expr.clone(), table_expr.clone())],
        &scope,
    );
    let key_expr = join_key(
        &items,
        &viable.iter().collect::<Vec<_>>(),
        "join expression",
        &scope,
        sink,
    )?;
    let (key_exprs, value_exprs, order) = split_key(items, &[key_expr], &scope, sink)?;
    let (key, key_cols) = compile_all(&key_exprs, &scope, "SELECT")?;
    let (values, value_cols) = compile_all(&value_exprs, &scope, "SELECT")?;
    Ok(Plan {
        order,
        kind: SourceKind::Stream,
        op: Op::StreamTable {
            kind: join.kind,
            left_key: lk.node,
            filter,
            key,
            values,
        },
        key: key_cols,
        value: value_cols,
        window: None,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

/// The two sides of a join's equality, each compiled over its own side's
/// scope: (left node, right node, left expr, right expr).
fn join_sides<'a>(
    on: &'a Expr,
    ls: &Scope,
    rs: &Scope,
) -> Result<(Node, Node, &'a Expr, &'a Expr)> {
    let Expr::Binary {
        op: BinOp::Eq,
        left: a,
        right: b,
    } = on
    else {
        return Err(SqlError::invalid(format!(
            "Unsupported join expression: {on}. Joins need an equality of a column of each side"
        )));
    };
    let try_pair = |x: &Expr, y: &Expr| -> Option<(crate::expr::Typed, crate::expr::Typed)> {
        Some((compile(x, ls, "JOIN").ok()?, compile(y, rs, "JOIN").ok()?))
    };
    let (lt, rt, le, re) = if let Some((l, r)) = try_pair(a, b) {
        (l, r, a.as_ref(), b.as_ref())
    } else if let Some((l, r)) = try_pair(b, a) {
        (l, r, b.as_ref(), a.as_ref())
    } else {
        return Err(SqlError::invalid(format!(
            "Invalid comparison expression '{on}' in join. Each side of the join comparison must contain references from exactly one source."
        )));
    };
    if lt.ty != rt.ty {
        return Err(SqlError::invalid(format!(
            "Invalid join condition: types don't match. Got {le}{{{}}} = {re}{{{}}}.",
            lt.ty, rt.ty
        )));
    }
    Ok((lt.node, rt.node, le, re))
}

/// Plans a stream joined to streams (WITHIN, INNER/LEFT/RIGHT/FULL) and
/// tables (on the table's key, INNER/LEFT), one stage per join. The
/// result is a stream keyed by the last join's key.
fn plan_joins(query: &Query, inputs: Vec<Input>, sink: Option<&str>) -> Result<Plan> {
    if !query.group_by.is_empty() || query.window.is_some() || !query.partition_by.is_empty() {
        return Err(SqlError::invalid(
            "GROUP BY, WINDOW and PARTITION BY over a join are not supported by Weir yet",
        ));
    }
    if inputs.iter().any(|i| i.source.window.is_some()) {
        return Err(SqlError::invalid(
            "Joins of windowed sources are not supported by Weir yet",
        ));
    }
    let mut scope = inputs[0].scope();
    let mut stages = Vec::new();
    let mut last_sides = None;
    let mut sides = Vec::new();
    for (j, join) in query.from.joins.iter().enumerate() {
        let right = &inputs[j + 1];
        let left_names = inputs[..=j]
            .iter()
            .map(|i| i.source.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if inputs[..=j]
            .iter()
            .any(|i| i.source.topic == right.source.topic)
        {
            return Err(SqlError::invalid(format!(
                "Can not join '{}' to '{left_names}': self joins are not yet supported.",
                right.source.name
            )));
        }
        let rs = right.scope();
        let (left_key, right_key, le, re) = join_sides(&join.on, &scope, &rs)?;
        let window = if right.source.is_table() {
            if join.within.is_some() {
                return Err(SqlError::invalid(
                    "WITHIN is only allowed for stream-stream joins, not for a stream-table join",
                ));
            }
            if !matches!(join.kind, JoinType::Inner | JoinType::Left) {
                return Err(SqlError::invalid(format!(
                    "Invalid join type: {:?} join is not supported for stream-table joins, only INNER and LEFT",
                    join.kind
                )));
            }
            let key_name = right.source.key.first().map(|(n, _)| n.as_str());
            let on_key = matches!(re, Expr::Column { name, .. } if Some(name.as_str()) == key_name);
            if !on_key || right.source.key.len() != 1 {
                return Err(SqlError::invalid(format!(
                    "Invalid join condition: stream-table joins require the table's PRIMARY KEY on one side. Got {}.",
                    join.on
                )));
            }
            None
        } else {
            let Some(within) = &join.within else {
                return Err(SqlError::invalid(
                    "Stream-Stream joins must have a WITHIN clause specified. None was provided.",
                ));
            };
            if within.before_ms < 0 || within.after_ms < 0 || within.grace_ms.is_some_and(|g| g < 0)
            {
                return Err(SqlError::invalid(
                    "WITHIN and GRACE PERIOD must not be negative",
                ));
            }
            // Without GRACE PERIOD ksqlDB keeps Kafka Streams' legacy
            // default: 24 hours less the window size.
            let grace_ms = within.grace_ms.unwrap_or_else(|| {
                (DEFAULT_GRACE_MS - within.before_ms.saturating_add(within.after_ms)).max(0)
            });
            Some(JoinWindow {
                before_ms: within.before_ms,
                after_ms: within.after_ms,
                grace_ms,
                deferred: within.grace_ms.is_some(),
            })
        };
        let ty = compile(re, &rs, "JOIN")?.ty;
        stages.push(Stage {
            kind: join.kind,
            left_key,
            right_key,
            window,
            left_width: inputs[..=j].iter().map(Input::width).sum(),
            right_width: right.width(),
            key_type: ty.clone(),
        });
        scope.columns.extend(rs.columns.iter().cloned());
        sides.push((join.kind, le.clone(), re.clone()));
        last_sides = Some(ty);
    }
    let Some(key_ty) = last_sides else {
        return Err(SqlError::invalid("A join needs a JOIN clause"));
    };
    // The key is synthetic when no column equals it: the last join is
    // FULL (either side may be missing), or it is on expressions.
    let viable = viable_keys(&sides, &scope);
    let synthetic = viable
        .is_empty()
        .then(|| synthetic_key(&inputs, key_ty, &mut scope));
    let filter = match &query.where_ {
        Some(w) => Some(boolean(w, &scope, "WHERE")?),
        None => None,
    };
    let items = expand_select(query, &inputs, true, synthetic.as_ref())?;
    let key_expr = match &synthetic {
        Some(k) => join_key(&items, &[k], SYNTHETIC, &scope, sink)?,
        None => join_key(
            &items,
            &viable.iter().collect::<Vec<_>>(),
            "join expression",
            &scope,
            sink,
        )?,
    };
    let (key_exprs, value_exprs, order) = split_key(items, &[key_expr], &scope, sink)?;
    let (key, key_cols) = compile_all(&key_exprs, &scope, "SELECT")?;
    let (values, value_cols) = compile_all(&value_exprs, &scope, "SELECT")?;
    Ok(Plan {
        order,
        kind: SourceKind::Stream,
        op: Op::Joins {
            stages,
            synthetic_key: synthetic.is_some(),
            filter,
            key,
            values,
        },
        key: key_cols,
        value: value_cols,
        window: None,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

/// Plans a join of two tables: on both primary keys (INNER, LEFT, RIGHT,
/// FULL), or a foreign-key join (INNER, LEFT) when the left side of the
/// equality is not the left table's key.
fn plan_table_join(query: &Query, inputs: Vec<Input>, sink: Option<&str>) -> Result<Plan> {
    let join = &query.from.joins[0];
    let (left, right) = (&inputs[0], &inputs[1]);
    if join.within.is_some() {
        return Err(SqlError::invalid(
            "WITHIN is only allowed for stream-stream joins, not for a table-table join",
        ));
    }
    if !query.group_by.is_empty() || query.window.is_some() || !query.partition_by.is_empty() {
        return Err(SqlError::invalid(
            "GROUP BY, WINDOW and PARTITION BY over a join are not supported by Weir yet",
        ));
    }
    if left.source.window.is_some() || right.source.window.is_some() {
        return Err(SqlError::invalid(
            "Joins of windowed tables are not supported by Weir yet",
        ));
    }
    let (Some((left_key, left_key_ty)), Some((right_key, right_key_ty)), 1, 1) = (
        left.source.key.first(),
        right.source.key.first(),
        left.source.key.len(),
        right.source.key.len(),
    ) else {
        return Err(SqlError::invalid(
            "Table-table joins need tables with exactly one PRIMARY KEY column",
        ));
    };
    let left_scope = left.scope();
    let mut scope = left.scope();
    scope.columns.extend(right.scope().columns.iter().cloned());
    let Expr::Binary {
        op: BinOp::Eq,
        left: a,
        right: b,
    } = &join.on
    else {
        return Err(SqlError::invalid(format!(
            "Unsupported join expression: {}. Joins need an equality of a column of each side",
            join.on
        )));
    };
    let is_right_key = |e: &Expr| match e {
        Expr::Column { qualifier, name } => {
            name == right_key
                && scope
                    .resolve(qualifier.as_deref(), name, "")
                    .is_ok_and(|i| i >= left_scope.columns.len())
        }
        _ => false,
    };
    let (left_expr, right_expr) = if is_right_key(b) {
        (a.as_ref(), b.as_ref())
    } else if is_right_key(a) {
        (b.as_ref(), a.as_ref())
    } else {
        return Err(SqlError::invalid(format!(
            "Invalid join condition: table-table joins require the right table's PRIMARY KEY on one side. Got {}.",
            join.on
        )));
    };
    let lk = compile(left_expr, &left_scope, "JOIN").map_err(|_| {
        SqlError::invalid(format!(
            "Invalid join condition: {left_expr} must be an expression over {}",
            left.qualifier
        ))
    })?;
    if lk.ty != *right_key_ty {
        return Err(SqlError::invalid(format!(
            "Invalid join condition: types don't match. Got {left_expr}{{{}}} = {right_expr}{{{right_key_ty}}}.",
            lk.ty
        )));
    }
    let left_key_expr = Expr::Column {
        qualifier: Some(left.qualifier.clone()),
        name: left_key.clone(),
    };
    let primary = same_expr(left_expr, &left_key_expr, &left_scope);
    if !primary && !matches!(join.kind, JoinType::Inner | JoinType::Left) {
        return Err(SqlError::invalid(format!(
            "Invalid join type: {:?} join is not supported for foreign-key table-table joins, only INNER and LEFT",
            join.kind
        )));
    }
    let _ = left_key_ty;
    // The result's key: the join key (either side of a primary-key join;
    // synthetic for a FULL join), or the left table's key for a
    // foreign-key join.
    let synthetic = (primary && join.kind == JoinType::Full)
        .then(|| synthetic_key(&inputs, right_key_ty.clone(), &mut scope));
    let filter = match &query.where_ {
        Some(w) => Some(boolean(w, &scope, "WHERE")?),
        None => None,
    };
    let items = expand_select(query, &inputs, true, synthetic.as_ref())?;
    let candidates: Vec<&Expr> = match &synthetic {
        Some(k) => vec![k],
        None if primary => vec![left_expr, right_expr],
        None => vec![&left_key_expr],
    };
    let what = match (&synthetic, primary) {
        (Some(_), _) => SYNTHETIC,
        (None, true) => "join expression",
        (None, false) => "left table's key",
    };
    let key_expr = join_key(&items, &candidates, what, &scope, sink)?;
    let (key_exprs, value_exprs, order) = split_key(items, &[key_expr], &scope, sink)?;
    let (key, key_cols) = compile_all(&key_exprs, &scope, "SELECT")?;
    let (values, value_cols) = compile_all(&value_exprs, &scope, "SELECT")?;
    Ok(Plan {
        order,
        kind: SourceKind::Table,
        op: Op::TableTable {
            kind: join.kind,
            foreign_key: (!primary).then_some(lk.node),
            synthetic_key: synthetic.is_some(),
            filter,
            key,
            values,
        },
        key: key_cols,
        value: value_cols,
        window: None,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

/// Plans a chain of table–table joins on primary keys. Each join's
/// equality names the right table's key and a key column of a table
/// before it, so every stage is keyed by the same value.
fn plan_table_chain(query: &Query, inputs: Vec<Input>, sink: Option<&str>) -> Result<Plan> {
    if !query.group_by.is_empty() || query.window.is_some() || !query.partition_by.is_empty() {
        return Err(SqlError::invalid(
            "GROUP BY, WINDOW and PARTITION BY over a join are not supported by Weir yet",
        ));
    }
    let mut key_exprs: Vec<Expr> = Vec::new();
    let mut key_ty = None;
    for input in &inputs {
        if input.source.window.is_some() {
            return Err(SqlError::invalid(
                "Joins of windowed tables are not supported by Weir yet",
            ));
        }
        let [(name, ty)] = input.source.key.as_slice() else {
            return Err(SqlError::invalid(
                "Table-table joins need tables with exactly one PRIMARY KEY column",
            ));
        };
        if key_ty.is_none() {
            key_ty = Some(ty.clone());
        }
        key_exprs.push(Expr::Column {
            qualifier: Some(input.qualifier.clone()),
            name: name.clone(),
        });
    }
    let mut scope = inputs[0].scope();
    let mut kinds = Vec::new();
    let mut sides = Vec::new();
    for (j, join) in query.from.joins.iter().enumerate() {
        let right = &inputs[j + 1];
        if !right.source.is_table() {
            return Err(SqlError::invalid(format!(
                "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {} [TABLE] {:?} JOIN {} [STREAM].",
                inputs[j].source.name, join.kind, right.source.name
            )));
        }
        if join.within.is_some() {
            return Err(SqlError::invalid(
                "WITHIN is only allowed for stream-stream joins, not for a table-table join",
            ));
        }
        let rs = right.scope();
        let (_, _, le, re) = join_sides(&join.on, &scope, &rs)?;
        let mut joined = scope.clone();
        joined.columns.extend(rs.columns.iter().cloned());
        let on_left_key = key_exprs[..=j].iter().any(|k| same_expr(le, k, &joined));
        if !same_expr(re, &key_exprs[j + 1], &joined) || !on_left_key {
            return Err(SqlError::invalid(format!(
                "Invalid join condition: a chain of table-table joins must join on the tables' PRIMARY KEYs (foreign-key joins cannot be chained). Got {}.",
                join.on
            )));
        }
        if right.source.key[0].1 != *key_ty.as_ref().unwrap_or(&right.source.key[0].1) {
            return Err(SqlError::invalid(format!(
                "Invalid join condition: types don't match. Got {}.",
                join.on
            )));
        }
        kinds.push(join.kind);
        sides.push((join.kind, le.clone(), re.clone()));
        scope = joined;
    }
    // The result's key: the join key, as a key column equal to it (not
    // one before a FULL join) projects it, or synthetic when the last
    // join is FULL.
    let viable = viable_keys(&sides, &scope);
    let synthetic = viable.is_empty().then(|| {
        synthetic_key(
            &inputs,
            key_ty.clone().unwrap_or(SqlType::String),
            &mut scope,
        )
    });
    let filter = match &query.where_ {
        Some(w) => Some(boolean(w, &scope, "WHERE")?),
        None => None,
    };
    let items = expand_select(query, &inputs, true, synthetic.as_ref())?;
    let candidates: Vec<&Expr> = match &synthetic {
        Some(k) => vec![k],
        None => viable.iter().collect(),
    };
    let what = if synthetic.is_some() {
        SYNTHETIC
    } else {
        "join expression"
    };
    let key_expr = join_key(&items, &candidates, what, &scope, sink)?;
    let (key_cols_exprs, value_exprs, order) = split_key(items, &[key_expr], &scope, sink)?;
    let (key, key_cols) = compile_all(&key_cols_exprs, &scope, "SELECT")?;
    let (values, value_cols) = compile_all(&value_exprs, &scope, "SELECT")?;
    Ok(Plan {
        order,
        kind: SourceKind::Table,
        op: Op::TableChain {
            synthetic_key: synthetic.is_some(),
            kinds,
            filter,
            key,
            values,
        },
        key: key_cols,
        value: value_cols,
        window: None,
        limit: query.limit,
        emit: query.emit,
        inputs,
    })
}

/// The key format of a query's output: the source's, or KAFKA when the
/// source had none and the output has key columns, or JSON when KAFKA
/// cannot carry several key columns.
pub fn output_key_format(plan: &Plan, requested: Option<Format>) -> Format {
    if let Some(f) = requested {
        return f;
    }
    let src = plan.inputs[0].source.key_format.clone();
    match (plan.key.len(), src) {
        (0, _) => Format::None,
        (_, Format::None) => Format::Kafka,
        (n, Format::Kafka) if n > 1 => Format::Json,
        (_, f) => f,
    }
}

/// A NULL-filled row of `n` values.
pub fn nulls(n: usize) -> Vec<Value> {
    vec![Value::Null; n]
}
