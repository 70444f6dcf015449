//! ACLs and the authorizer, following Kafka's `StandardAuthorizer`.
//!
//! An ACL ([`AclBinding`]) says that a principal, from a host, is allowed
//! or denied an operation on the resources a pattern names. A request is
//! checked with [`Authorizer::authorize`]:
//!
//! 1. a principal listed in `super.users` may do anything;
//! 2. the ACLs that apply are those on the resource's type whose pattern
//!    matches the name (LITERAL: the same name or `*`; PREFIXED: a prefix
//!    of the name), whose principal is the caller or `User:*`, and whose
//!    host is the caller's address or `*`;
//! 3. any applicable DENY wins; otherwise any applicable ALLOW allows;
//! 4. if no ACL at all exists for the resource (for any principal), the
//!    answer is `allow.everyone.if.no.acl.found`; otherwise it is deny.
//!
//! An ALLOW for READ, WRITE, DELETE or ALTER also allows DESCRIBE, and an
//! ALLOW for ALTER_CONFIGS also allows DESCRIBE_CONFIGS. DENY ACLs imply
//! nothing: denying READ does not deny DESCRIBE. ALL matches every
//! operation, for ALLOW and DENY alike.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::IpAddr;

use crate::{AuthError, KafkaPrincipal};

/// A binding Kafka refuses, with Kafka's message.
fn invalid_acl(reason: String) -> AuthError {
    AuthError::InvalidAcl { reason }
}

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The name that, in a LITERAL pattern, matches every resource.
pub const WILDCARD_RESOURCE: &str = "*";

/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The host that matches every host.
pub const WILDCARD_HOST: &str = "*";

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [Self] = &[$(Self::$v),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $(Self::$v => $code,)*
                }
            }

            /// The value for a wire code; `None` for UNKNOWN (0) and codes
            /// this version does not know.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$v),)*
                    _ => None,
                }
            }

            /// Kafka's name (`TRANSACTIONAL_ID`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$v => $text,)*
                }
            }

            /// Parses Kafka's name, case-insensitively, `_` optional.
            pub fn parse(s: &str) -> Option<Self> {
                let norm = |x: &str| x.replace(['_', '-'], "").to_ascii_uppercase();
                let s = norm(s);
                Self::ALL_VALUES.iter().copied().find(|v| norm(v.name()) == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum!(
    /// What kind of thing an ACL protects (Kafka's `ResourceType`).
    ResourceType {
        /// Filters only: any type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (one resource, named `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (for SCRAM credentials and tokens).
        User = 7, "USER";
    }
);

coded_enum!(
    /// How an ACL's resource name is matched (Kafka's `PatternType`).
    PatternType {
        /// Filters only: any pattern type, the name compared exactly.
        Any = 1, "ANY";
        /// Filters only: every ACL that would apply to the named resource
        /// (literal same name, literal `*`, prefixes of the name).
        Match = 2, "MATCH";
        /// The exact name, or `*` for every resource.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with the pattern's name.
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// An operation on a resource (Kafka's `AclOperation`).
    AclOperation {
        /// Filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Inter-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded_enum!(
    /// Whether an ACL allows or denies (Kafka's `AclPermissionType`).
    PermissionType {
        /// Filters only: either.
        Any = 1, "ANY";
        /// Deny; wins over any allow.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
);

impl AclOperation {
    /// The operations that can be granted on a resource type, as Kafka
    /// reports them in "authorized operations" bit fields.
    pub fn supported_by(rt: ResourceType) -> &'static [AclOperation] {
        use AclOperation::*;
        match rt {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }

    /// Whether an ALLOW ACL for `self` allows `requested` (ALL allows
    /// everything; READ, WRITE, DELETE and ALTER imply DESCRIBE;
    /// ALTER_CONFIGS implies DESCRIBE_CONFIGS).
    pub fn allow_implies(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        match (self, requested) {
            (All, _) => true,
            (a, b) if a == b => true,
            (Read | Write | Delete | Alter, Describe) => true,
            (AlterConfigs, DescribeConfigs) => true,
            _ => false,
        }
    }

    /// Whether a DENY ACL for `self` denies `requested`: only the same
    /// operation or ALL (deny implies nothing else).
    pub fn deny_implies(self, requested: AclOperation) -> bool {
        self == AclOperation::All || self == requested
    }
}

/// One ACL: `principal` from `host` is `permission` to `operation` on the
/// resources of `resource_type` that `pattern_type`/`name` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource type (never ANY).
    pub resource_type: ResourceType,
    /// The resource name, `*` for all (LITERAL only).
    pub name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    /// The operation (never ANY).
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: PermissionType,
}

impl AclBinding {
    /// Checks that the binding can be stored, as Kafka's
    /// `AclControlManager.validateNewAcl` and `CreateAcls` do. The message
    /// is Kafka's.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.resource_type == ResourceType::Any {
            return Err(invalid_acl(format!(
                "Invalid resourceType {}",
                self.resource_type
            )));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(invalid_acl(format!(
                "Invalid patternType {}",
                self.pattern_type
            )));
        }
        if self.operation == AclOperation::Any {
            return Err(invalid_acl(format!("Invalid operation {}", self.operation)));
        }
        if self.permission == PermissionType::Any {
            return Err(invalid_acl(format!(
                "Invalid permissionType {}",
                self.permission
            )));
        }
        if self.name.is_empty() {
            return Err(invalid_acl("Invalid empty resource name".into()));
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(invalid_acl(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            )));
        }
        if KafkaPrincipal::parse(&self.principal).is_none() {
            return Err(invalid_acl(format!(
                "Could not parse principal from `{}` (no colon is found)",
                self.principal
            )));
        }
        if self.host.is_empty() {
            return Err(invalid_acl("Invalid empty host".into()));
        }
        Ok(())
    }

    /// Whether this ACL's pattern covers the resource `name` (of the same
    /// type).
    fn pattern_matches(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.name == name || self.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&self.name),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(pattern={}:{}:{}, principal={}, host={}, operation={}, permission={})",
            self.resource_type,
            self.pattern_type,
            self.name,
            self.principal,
            self.host,
            self.operation,
            self.permission
        )
    }
}

/// A filter over ACLs, as DescribeAcls and DeleteAcls send it. `None`
/// fields and ANY values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    /// The resource type, or ANY.
    pub resource_type: ResourceType,
    /// The resource name; with MATCH, the resource whose applicable ACLs
    /// are wanted.
    pub name: Option<String>,
    /// ANY, MATCH, LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// The principal.
    pub principal: Option<String>,
    /// The host.
    pub host: Option<String>,
    /// The operation, or ANY.
    pub operation: AclOperation,
    /// The permission, or ANY.
    pub permission: PermissionType,
}

impl AclBindingFilter {
    /// A filter matching every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        }
    }

    /// Whether `acl` passes the filter (Kafka's
    /// `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`).
    pub fn matches(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let name_ok = match &self.name {
            None => true,
            Some(n) if self.pattern_type == PatternType::Match => acl.pattern_matches(n),
            Some(n) => *n == acl.name,
        };
        name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission == PermissionType::Any || self.permission == acl.permission)
    }
}

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: HashSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users` (`User:a;User:b`, blanks ignored).
    pub fn parse_super_users(s: &str) -> Result<HashSet<String>, AuthError> {
        s.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                KafkaPrincipal::parse(p)
                    .map(|k| k.to_string())
                    .ok_or_else(|| AuthError::BadValue {
                        detail: format!("`{p}` is not a principal of the form Type:name"),
                    })
            })
            .collect()
    }
}

/// What an authorization decision was based on (for audit messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The principal is a super user.
    SuperUser,
    /// An ACL allowed it.
    AllowedBy(AclBinding),
    /// An ACL denied it.
    DeniedBy(AclBinding),
    /// No ACL exists for the resource; `allow.everyone.if.no.acl.found`
    /// decided.
    NoAcl(bool),
    /// ACLs exist for the resource, but none allows this.
    NoMatchingAllow,
}

impl Decision {
    /// Whether access is granted.
    pub fn allowed(&self) -> bool {
        match self {
            Decision::SuperUser | Decision::AllowedBy(_) => true,
            Decision::NoAcl(allowed) => *allowed,
            Decision::DeniedBy(_) | Decision::NoMatchingAllow => false,
        }
    }
}

/// The ACLs and the rules to apply them: Kafka's `StandardAuthorizer` as
/// pure logic (storage is the caller's).
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    config: AuthorizerConfig,
    acls: BTreeSet<AclBinding>,
}

impl Authorizer {
    /// An authorizer without ACLs.
    pub fn new(config: AuthorizerConfig) -> Self {
        Self {
            config,
            acls: BTreeSet::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    /// Adds an ACL (validated by the caller); `false` if it was there.
    pub fn add(&mut self, acl: AclBinding) -> bool {
        self.acls.insert(acl)
    }

    /// Removes one ACL; `false` if it was not there.
    pub fn remove(&mut self, acl: &AclBinding) -> bool {
        self.acls.remove(acl)
    }

    /// The ACLs passing `filter`, in a stable order.
    pub fn acls(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.acls
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Every ACL.
    pub fn all(&self) -> impl Iterator<Item = &AclBinding> {
        self.acls.iter()
    }

    /// Whether `principal` at `host` may do `op` on the resource, with the
    /// reason.
    pub fn decide(
        &self,
        principal: &KafkaPrincipal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        let who = principal.to_string();
        if self.config.super_users.contains(&who) {
            return Decision::SuperUser;
        }
        let host = host.map(|h| h.to_string()).unwrap_or_default();
        let mut has_resource_acls = false;
        let mut allow = None;
        for acl in self
            .acls
            .iter()
            .filter(|a| a.resource_type == resource_type && a.pattern_matches(name))
        {
            has_resource_acls = true;
            if acl.principal != who && acl.principal != WILDCARD_PRINCIPAL {
                continue;
            }
            if acl.host != WILDCARD_HOST && acl.host != host {
                continue;
            }
            match acl.permission {
                PermissionType::Deny if acl.operation.deny_implies(op) => {
                    return Decision::DeniedBy(acl.clone());
                }
                PermissionType::Allow if allow.is_none() && acl.operation.allow_implies(op) => {
                    allow = Some(acl.clone());
                }
                _ => {}
            }
        }
        match allow {
            Some(acl) => Decision::AllowedBy(acl),
            None if !has_resource_acls => {
                Decision::NoAcl(self.config.allow_everyone_if_no_acl_found)
            }
            None => Decision::NoMatchingAllow,
        }
    }

    /// Whether `principal` at `host` may do `op` on the resource.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(principal, host, op, resource_type, name)
            .allowed()
    }

    /// Whether `principal` may do `op` on at least one resource of the
    /// type (Kafka's `Authorizer.authorizeByResourceType`, used e.g. for
    /// idempotent producers: WRITE on any topic). Implications do not
    /// apply here, as in Kafka.
    pub fn authorize_by_resource_type(
        &self,
        principal: &KafkaPrincipal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        // Kafka checks a made-up name first so super users and
        // allow.everyone.if.no.acl.found are honoured.
        if self.authorize(principal, host, op, resource_type, "hardcode") {
            return true;
        }
        let who = principal.to_string();
        let host = host.map(|h| h.to_string()).unwrap_or_default();
        let mut deny_literal = HashSet::new();
        let mut deny_prefixed = HashSet::new();
        let mut allows = Vec::new();
        for acl in self.acls.iter().filter(|a| {
            a.resource_type == resource_type
                && (a.host == WILDCARD_HOST || a.host == host)
                && (a.principal == who || a.principal == WILDCARD_PRINCIPAL)
                && (a.operation == op || a.operation == AclOperation::All)
        }) {
            match (acl.permission, acl.pattern_type) {
                (PermissionType::Deny, PatternType::Literal) => {
                    if acl.name == WILDCARD_RESOURCE {
                        return false;
                    }
                    deny_literal.insert(acl.name.as_str());
                }
                (PermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(acl.name.as_str());
                }
                (PermissionType::Allow, PatternType::Literal) if acl.name == WILDCARD_RESOURCE => {
                    return true;
                }
                (PermissionType::Allow, _) => allows.push(acl),
                _ => {}
            }
        }
        allows.iter().any(|a| {
            if a.pattern_type == PatternType::Literal && deny_literal.contains(a.name.as_str()) {
                return false;
            }
            !a.name
                .char_indices()
                .map(|(i, c)| &a.name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix))
        })
    }

    /// The operations `principal` may do on the resource, as Kafka's
    /// "authorized operations" bit field (bit `1 << code`).
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: Option<IpAddr>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        AclOperation::supported_by(resource_type)
            .iter()
            .filter(|op| self.authorize(principal, host, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: AclOperation,
        perm: PermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn topic_acl(
        name: &str,
        principal: &str,
        op: AclOperation,
        perm: PermissionType,
    ) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            PatternType::Literal,
            principal,
            op,
            perm,
        )
    }

    fn alice() -> KafkaPrincipal {
        KafkaPrincipal::user("alice")
    }

    fn with(acls: Vec<AclBinding>) -> Authorizer {
        let mut a = Authorizer::default();
        for x in acls {
            assert!(x.validate().is_ok(), "{x}");
            a.add(x);
        }
        a
    }

    fn can(a: &Authorizer, op: AclOperation, topic: &str) -> bool {
        a.authorize(&alice(), None, op, ResourceType::Topic, topic)
    }

    use AclOperation::*;
    use PermissionType::{Allow, Deny};

    #[test]
    fn codes_round_trip_and_unknown_is_none() {
        for rt in ResourceType::ALL_VALUES {
            assert_eq!(ResourceType::from_code(rt.code()), Some(*rt));
        }
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
        }
        assert_eq!(ResourceType::from_code(0), None);
        assert_eq!(PatternType::from_code(5), None);
        assert_eq!(AclOperation::from_code(0), None);
        assert_eq!(PermissionType::from_code(0), None);
        assert_eq!(AclOperation::Describe.code(), 8);
        assert_eq!(ResourceType::TransactionalId.code(), 5);
    }

    #[test]
    fn names_parse_like_kafka_cli() {
        assert_eq!(
            ResourceType::parse("transactional_id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(
            AclOperation::parse("DescribeConfigs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
        assert_eq!(PermissionType::parse("nope"), None);
    }

    #[test]
    fn no_acls_denies_by_default() {
        assert!(!can(&Authorizer::default(), Read, "t"));
    }

    #[test]
    fn no_acls_allows_when_allow_everyone_if_no_acl_found() {
        let a = Authorizer::new(AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..Default::default()
        });
        assert!(can(&a, Read, "t"));
    }

    #[test]
    fn allow_everyone_does_not_apply_once_the_resource_has_any_acl() {
        let mut a = Authorizer::new(AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..Default::default()
        });
        a.add(topic_acl("t", "User:bob", Read, Allow));
        assert!(!can(&a, Read, "t"));
        assert!(can(&a, Read, "other"));
    }

    #[test]
    fn super_users_may_do_anything_even_when_denied() {
        let mut a = Authorizer::new(AuthorizerConfig {
            super_users: AuthorizerConfig::parse_super_users("User:alice; User:ops").unwrap(),
            ..Default::default()
        });
        a.add(topic_acl("t", "User:alice", All, Deny));
        assert!(can(&a, Write, "t"));
        assert!(!a.authorize(
            &KafkaPrincipal::user("bob"),
            None,
            Write,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn super_users_must_be_principals() {
        assert!(AuthorizerConfig::parse_super_users("alice").is_err());
        assert!(AuthorizerConfig::parse_super_users("").unwrap().is_empty());
    }

    #[test]
    fn literal_acl_allows_exactly_its_resource_and_operation() {
        let a = with(vec![topic_acl("t", "User:alice", Read, Allow)]);
        assert!(can(&a, Read, "t"));
        assert!(!can(&a, Write, "t"));
        assert!(!can(&a, Read, "t2"));
        assert!(!a.authorize(&alice(), None, Read, ResourceType::Group, "t"));
    }

    #[test]
    fn other_principals_acls_do_not_apply() {
        let a = with(vec![topic_acl("t", "User:bob", Read, Allow)]);
        assert!(!can(&a, Read, "t"));
    }

    #[test]
    fn wildcard_principal_matches_everyone() {
        let a = with(vec![topic_acl("t", "User:*", Read, Allow)]);
        assert!(can(&a, Read, "t"));
    }

    #[test]
    fn wildcard_resource_matches_every_name() {
        let a = with(vec![topic_acl("*", "User:alice", Write, Allow)]);
        assert!(can(&a, Write, "anything"));
    }

    #[test]
    fn prefixed_acl_matches_names_starting_with_it() {
        let a = with(vec![acl(
            ResourceType::Topic,
            "orders-",
            PatternType::Prefixed,
            "User:alice",
            Read,
            Allow,
        )]);
        assert!(can(&a, Read, "orders-eu"));
        assert!(can(&a, Read, "orders-"));
        assert!(!can(&a, Read, "orders"));
        assert!(!can(&a, Read, "x-orders-eu"));
    }

    #[test]
    fn prefixed_star_is_not_a_wildcard() {
        let a = with(vec![acl(
            ResourceType::Topic,
            "*",
            PatternType::Prefixed,
            "User:alice",
            Read,
            Allow,
        )]);
        assert!(!can(&a, Read, "t"));
        assert!(can(&a, Read, "*t"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let a = with(vec![
            topic_acl("*", "User:alice", Read, Allow),
            topic_acl("t", "User:alice", Read, Deny),
        ]);
        assert!(!can(&a, Read, "t"));
        assert!(can(&a, Read, "u"));
    }

    #[test]
    fn deny_for_everyone_wins_over_allow_for_the_principal() {
        let a = with(vec![
            topic_acl("t", "User:alice", Read, Allow),
            topic_acl("t", "User:*", Read, Deny),
        ]);
        assert!(!can(&a, Read, "t"));
    }

    #[test]
    fn prefixed_deny_wins_over_literal_allow() {
        let a = with(vec![
            topic_acl("secret-x", "User:alice", Read, Allow),
            acl(
                ResourceType::Topic,
                "secret-",
                PatternType::Prefixed,
                "User:*",
                Read,
                Deny,
            ),
        ]);
        assert!(!can(&a, Read, "secret-x"));
    }

    #[test]
    fn deny_all_denies_every_operation() {
        let a = with(vec![
            topic_acl("t", "User:alice", All, Allow),
            topic_acl("t", "User:alice", All, Deny),
        ]);
        for op in AclOperation::supported_by(ResourceType::Topic) {
            assert!(!can(&a, *op, "t"), "{op}");
        }
    }

    #[test]
    fn allow_all_allows_every_operation() {
        let a = with(vec![topic_acl("t", "User:alice", All, Allow)]);
        for op in AclOperation::supported_by(ResourceType::Topic) {
            assert!(can(&a, *op, "t"), "{op}");
        }
    }

    #[test]
    fn read_write_delete_alter_imply_describe() {
        for op in [Read, Write, Delete, Alter] {
            let a = with(vec![topic_acl("t", "User:alice", op, Allow)]);
            assert!(can(&a, Describe, "t"), "{op}");
        }
        for op in [Create, DescribeConfigs, AlterConfigs] {
            let a = with(vec![topic_acl("t", "User:alice", op, Allow)]);
            assert!(!can(&a, Describe, "t"), "{op}");
        }
    }

    #[test]
    fn alter_configs_implies_describe_configs() {
        let a = with(vec![topic_acl("t", "User:alice", AlterConfigs, Allow)]);
        assert!(can(&a, DescribeConfigs, "t"));
        let a = with(vec![topic_acl("t", "User:alice", Alter, Allow)]);
        assert!(!can(&a, DescribeConfigs, "t"));
    }

    #[test]
    fn implications_do_not_go_the_other_way() {
        let a = with(vec![topic_acl("t", "User:alice", Describe, Allow)]);
        assert!(!can(&a, Read, "t"));
        assert!(!can(&a, Write, "t"));
    }

    #[test]
    fn deny_implies_nothing() {
        let a = with(vec![
            topic_acl("t", "User:alice", Describe, Allow),
            topic_acl("t", "User:alice", Read, Deny),
        ]);
        assert!(can(&a, Describe, "t"));
        assert!(!can(&a, Read, "t"));
    }

    #[test]
    fn host_must_match_unless_wildcard() {
        let mut x = topic_acl("t", "User:alice", Read, Allow);
        x.host = "10.0.0.1".into();
        let a = with(vec![x]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(a.authorize(&alice(), ip("10.0.0.1"), Read, ResourceType::Topic, "t"));
        assert!(!a.authorize(&alice(), ip("10.0.0.2"), Read, ResourceType::Topic, "t"));
        assert!(!a.authorize(&alice(), None, Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn host_specific_deny_only_denies_that_host() {
        let mut deny = topic_acl("t", "User:alice", Read, Deny);
        deny.host = "10.0.0.9".into();
        let a = with(vec![topic_acl("t", "User:alice", Read, Allow), deny]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(!a.authorize(&alice(), ip("10.0.0.9"), Read, ResourceType::Topic, "t"));
        assert!(a.authorize(&alice(), ip("10.0.0.1"), Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn validate_rejects_what_kafka_rejects() {
        let ok = topic_acl("t", "User:alice", Read, Allow);
        assert!(ok.validate().is_ok());
        let bad = |f: &dyn Fn(&mut AclBinding)| {
            let mut b = ok.clone();
            f(&mut b);
            b.validate().unwrap_err().to_string()
        };
        assert!(bad(&|b| b.resource_type = ResourceType::Any).contains("resourceType"));
        assert!(bad(&|b| b.pattern_type = PatternType::Match).contains("patternType"));
        assert!(bad(&|b| b.pattern_type = PatternType::Any).contains("patternType"));
        assert!(bad(&|b| b.operation = AclOperation::Any).contains("operation"));
        assert!(bad(&|b| b.permission = PermissionType::Any).contains("permissionType"));
        assert!(bad(&|b| b.name.clear()).contains("empty"));
        assert!(bad(&|b| b.principal = "alice".into()).contains("principal"));
        assert!(bad(&|b| {
            b.resource_type = ResourceType::Cluster;
            b.name = "c".into()
        })
        .contains(CLUSTER_NAME));
    }

    #[test]
    fn filter_any_matches_everything() {
        let x = topic_acl("t", "User:alice", Read, Allow);
        assert!(AclBindingFilter::any().matches(&x));
    }

    #[test]
    fn filter_fields_must_each_match() {
        let x = topic_acl("t", "User:alice", Read, Allow);
        let f = |g: &dyn Fn(&mut AclBindingFilter)| {
            let mut f = AclBindingFilter::any();
            g(&mut f);
            f.matches(&x)
        };
        assert!(f(&|f| f.resource_type = ResourceType::Topic));
        assert!(!f(&|f| f.resource_type = ResourceType::Group));
        assert!(f(&|f| f.name = Some("t".into())));
        assert!(!f(&|f| f.name = Some("u".into())));
        assert!(f(&|f| f.pattern_type = PatternType::Literal));
        assert!(!f(&|f| f.pattern_type = PatternType::Prefixed));
        assert!(f(&|f| f.principal = Some("User:alice".into())));
        assert!(!f(&|f| f.principal = Some("User:bob".into())));
        assert!(f(&|f| f.host = Some("*".into())));
        assert!(!f(&|f| f.host = Some("1.2.3.4".into())));
        assert!(f(&|f| f.operation = Read));
        assert!(!f(&|f| f.operation = All));
        assert!(f(&|f| f.permission = Allow));
        assert!(!f(&|f| f.permission = Deny));
    }

    #[test]
    fn filter_any_pattern_compares_names_exactly() {
        let prefixed = acl(
            ResourceType::Topic,
            "orders-",
            PatternType::Prefixed,
            "User:alice",
            Read,
            Allow,
        );
        let mut f = AclBindingFilter::any();
        f.name = Some("orders-eu".into());
        assert!(!f.matches(&prefixed));
        f.name = Some("orders-".into());
        assert!(f.matches(&prefixed));
    }

    #[test]
    fn filter_match_finds_every_acl_that_applies_to_the_resource() {
        let a = with(vec![
            topic_acl("orders-eu", "User:alice", Read, Allow),
            topic_acl("*", "User:alice", Read, Allow),
            acl(
                ResourceType::Topic,
                "orders-",
                PatternType::Prefixed,
                "User:alice",
                Read,
                Allow,
            ),
            topic_acl("orders-", "User:alice", Read, Allow),
            topic_acl("orders-us", "User:alice", Read, Allow),
        ]);
        let mut f = AclBindingFilter::any();
        f.pattern_type = PatternType::Match;
        f.name = Some("orders-eu".into());
        let found = a.acls(&f);
        let names: Vec<_> = found
            .iter()
            .map(|x| format!("{}:{}", x.pattern_type, x.name))
            .collect();
        assert_eq!(found.len(), 3, "{names:?}");
        assert!(names.contains(&"LITERAL:orders-eu".to_string()));
        assert!(names.contains(&"LITERAL:*".to_string()));
        assert!(names.contains(&"PREFIXED:orders-".to_string()));
    }

    #[test]
    fn filter_match_without_a_name_matches_all_patterns() {
        let a = with(vec![
            topic_acl("t", "User:alice", Read, Allow),
            acl(
                ResourceType::Topic,
                "p",
                PatternType::Prefixed,
                "User:alice",
                Read,
                Allow,
            ),
        ]);
        let mut f = AclBindingFilter::any();
        f.pattern_type = PatternType::Match;
        assert_eq!(a.acls(&f).len(), 2);
    }

    #[test]
    fn by_resource_type_allows_when_any_resource_is_allowed() {
        let a = with(vec![topic_acl("t", "User:alice", Write, Allow)]);
        assert!(a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
        assert!(!a.authorize_by_resource_type(&alice(), None, Read, ResourceType::Topic));
    }

    #[test]
    fn by_resource_type_honours_dominating_denies() {
        let a = with(vec![
            topic_acl("t", "User:alice", Write, Allow),
            topic_acl("t", "User:alice", Write, Deny),
        ]);
        assert!(!a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
        let a = with(vec![
            acl(
                ResourceType::Topic,
                "abc",
                PatternType::Prefixed,
                "User:alice",
                Write,
                Allow,
            ),
            acl(
                ResourceType::Topic,
                "ab",
                PatternType::Prefixed,
                "User:alice",
                Write,
                Deny,
            ),
        ]);
        assert!(!a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
        let a = with(vec![
            topic_acl("x", "User:alice", Write, Allow),
            topic_acl("*", "User:alice", Write, Deny),
        ]);
        assert!(!a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
    }

    #[test]
    fn by_resource_type_allows_super_users_and_wildcard_allows() {
        let a = Authorizer::new(AuthorizerConfig {
            super_users: ["User:alice".to_string()].into(),
            ..Default::default()
        });
        assert!(a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
        let a = with(vec![topic_acl("*", "User:*", All, Allow)]);
        assert!(a.authorize_by_resource_type(&alice(), None, Write, ResourceType::Topic));
    }

    #[test]
    fn authorized_operations_is_a_bit_field_of_allowed_operations() {
        let a = with(vec![topic_acl("t", "User:alice", Read, Allow)]);
        let bits = a.authorized_operations(&alice(), None, ResourceType::Topic, "t");
        assert_eq!(bits, (1 << Read.code()) | (1 << Describe.code()));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn op() -> impl Strategy<Value = AclOperation> {
            proptest::sample::select(
                AclOperation::ALL_VALUES
                    .iter()
                    .copied()
                    .filter(|o| *o != AclOperation::Any)
                    .collect::<Vec<_>>(),
            )
        }

        fn binding() -> impl Strategy<Value = AclBinding> {
            (
                proptest::sample::select(vec!["t", "*", "to", "x"]),
                proptest::bool::ANY,
                proptest::sample::select(vec!["User:alice", "User:*", "User:bob"]),
                proptest::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
                op(),
                proptest::bool::ANY,
            )
                .prop_map(|(name, prefixed, principal, host, op, allow)| AclBinding {
                    resource_type: ResourceType::Topic,
                    name: name.into(),
                    pattern_type: if prefixed {
                        PatternType::Prefixed
                    } else {
                        PatternType::Literal
                    },
                    principal: principal.into(),
                    host: host.into(),
                    operation: op,
                    permission: if allow {
                        PermissionType::Allow
                    } else {
                        PermissionType::Deny
                    },
                })
        }

        proptest! {
            /// Adding an applicable DENY to any set of ACLs denies the
            /// request, whatever ALLOWs (or allow.everyone) there are.
            #[test]
            fn deny_always_wins(
                acls in proptest::collection::vec(binding(), 0..12),
                requested in op(),
                deny_op_is_all in proptest::bool::ANY,
                deny_prefixed in proptest::bool::ANY,
                deny_everyone in proptest::bool::ANY,
                allow_everyone in proptest::bool::ANY,
            ) {
                let mut a = Authorizer::new(AuthorizerConfig {
                    allow_everyone_if_no_acl_found: allow_everyone,
                    ..Default::default()
                });
                for x in acls {
                    a.add(x);
                }
                a.add(AclBinding {
                    resource_type: ResourceType::Topic,
                    name: if deny_prefixed { "to".into() } else { "topic".into() },
                    pattern_type: if deny_prefixed { PatternType::Prefixed } else { PatternType::Literal },
                    principal: if deny_everyone { "User:*".into() } else { "User:alice".into() },
                    host: "*".into(),
                    operation: if deny_op_is_all { AclOperation::All } else { requested },
                    permission: PermissionType::Deny,
                });
                let ip = Some("10.0.0.1".parse().unwrap());
                prop_assert!(!a.authorize(&KafkaPrincipal::user("alice"), ip, requested, ResourceType::Topic, "topic"));
            }

            /// Without any DENY, an applicable ALLOW always allows.
            #[test]
            fn allow_without_deny_allows(
                acls in proptest::collection::vec(binding(), 0..12),
                requested in op(),
            ) {
                let mut a = Authorizer::default();
                for x in acls.into_iter().filter(|x| x.permission == PermissionType::Allow) {
                    a.add(x);
                }
                a.add(topic_acl("topic", "User:alice", requested, PermissionType::Allow));
                prop_assert!(a.authorize(&alice(), None, requested, ResourceType::Topic, "topic"));
            }
        }
    }
}
