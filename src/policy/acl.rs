//! Kafka's ACL model and decisions, as pure data: no I/O, no async, no configuration structs.
//!
//! The semantics are StandardAuthorizer's (metadata/.../authorizer/StandardAuthorizerData.java) and the
//! `Authorizer.authorizeByResourceType` default method, summarised in `KAFKA_SEMANTICS.md` §4:
//! super users first; the bindings that match a resource are its LITERAL name, LITERAL `*` and every PREFIXED
//! prefix of the name; a binding applies when its principal is the client's or `User:*`, its host is `*` or
//! exactly the client's address in Java's form, and its operation matches; any applying DENY denies (a DENY
//! matches its own operation or ALL only), else any applying ALLOW allows (READ, WRITE, DELETE and ALTER
//! imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL implies everything); else the default
//! (`allow.everyone.if.no.acl.found`) applies only if no binding at all matches the resource.
//!
//! [`AclIndex`] is built once per policy and shared read-only: a decision allocates nothing.
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

/// Kafka's ResourceType (codes as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    pub fn code(self) -> i8 {
        self as i8
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The operations Kafka supports on this resource type (AclEntry.supportedOperations), in code order:
    /// the authorizedOperations bitfields are built from them.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }

    fn index(self) -> usize {
        self as usize - 2
    }
}

impl fmt::Display for ResourceType {
    /// As Kafka prints it in `Topic:LITERAL:t` (ResourceType.toString is the enum name in camel case).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
            ResourceType::DelegationToken => "DelegationToken",
            ResourceType::User => "User",
        })
    }
}

/// The cluster resource's one name (Resource.CLUSTER_NAME).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The LITERAL name that matches every resource of its type. (A PREFIXED `*` is the literal prefix "*".)
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host that matches every client address.
pub const WILDCARD_HOST: &str = "*";

/// How a binding's resource name matches (PatternType LITERAL 3, PREFIXED 4; ANY and MATCH are filters only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

impl fmt::Display for PatternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        })
    }
}

/// Kafka's AclOperation (codes as on the wire; UNKNOWN 0 and ANY 1 are filter values only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl Operation {
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Whether an ALLOW binding for `self` allows `requested` (Kafka's implied operations).
    fn allows(self, requested: Operation) -> bool {
        use Operation::*;
        self == All
            || self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY binding for `self` denies `requested`: only its own operation, or ALL.
    fn denies(self, requested: Operation) -> bool {
        self == Operation::All || self == requested
    }
}

impl fmt::Display for Operation {
    /// Kafka's names (AclOperation.toString), as the authorizer log and kafka-acls print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::All => "ALL",
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::Describe => "DESCRIBE",
            Operation::ClusterAction => "CLUSTER_ACTION",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
            Operation::CreateTokens => "CREATE_TOKENS",
            Operation::DescribeTokens => "DESCRIBE_TOKENS",
        })
    }
}

/// ALLOW 3 or DENY 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

/// One Kafka AclBinding: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub resource_name: String,
    /// `Type:name`, e.g. `User:alice`, or `User:*`.
    pub principal: String,
    /// `*` or one client address in Java's form (see [`java_host_address`]).
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl fmt::Display for AclBinding {
    /// `(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) on Topic:LITERAL:orders`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
            self.principal,
            self.host,
            self.operation,
            match self.permission {
                Permission::Allow => "ALLOW",
                Permission::Deny => "DENY",
            },
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// Who asks, from where: the parts of a request context a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// `User:alice` (a principal's type and name; anything else of it is ignored, as in Kafka).
    pub principal: &'a str,
    /// The client's address in Java's form ([`java_host_address`]).
    pub host: &'a str,
}

/// A decision and what made it, for the audit log and `kgate acls check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Allowed(Reason<'a>),
    Denied(Reason<'a>),
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// The principal is in `super_users`.
    SuperUser,
    /// This binding allowed or denied.
    Binding(&'a AclBinding),
    /// No binding matches the resource: `allow_everyone_if_no_acl_found` decided.
    NoAclFound,
    /// Bindings match the resource but none allows this principal, host and operation.
    DefaultDeny,
}

/// Every binding of a policy, indexed for decisions. Built once, then read concurrently.
#[derive(Debug, Default)]
pub struct AclIndex {
    by_type: [TypeIndex; 6],
    super_users: BTreeSet<String>,
    allow_everyone_if_no_acl_found: bool,
    len: usize,
}

#[derive(Debug, Default)]
struct TypeIndex {
    /// LITERAL bindings by name, `*` included.
    literal: HashMap<String, Vec<AclBinding>>,
    /// PREFIXED bindings by prefix.
    prefixed: HashMap<String, Vec<AclBinding>>,
    /// The distinct prefix lengths present, in bytes: a lookup tries only these slices of the name.
    prefix_lengths: BTreeSet<usize>,
    /// All bindings of the type, for listing.
    all: Vec<AclBinding>,
    /// Positions in `all` by principal (`User:*` is a key like any other) and operation, ALLOW and DENY
    /// apart: what authorize_by_resource_type reads, so that it never walks other principals' or other
    /// operations' bindings.
    allows_by_principal: HashMap<String, HashMap<Operation, Vec<usize>>>,
    denies_by_principal: HashMap<String, HashMap<Operation, Vec<usize>>>,
}

impl TypeIndex {
    fn insert(&mut self, binding: AclBinding) {
        let map = match binding.pattern_type {
            PatternType::Literal => &mut self.literal,
            PatternType::Prefixed => {
                self.prefix_lengths.insert(binding.resource_name.len());
                &mut self.prefixed
            }
        };
        map.entry(binding.resource_name.clone())
            .or_default()
            .push(binding.clone());
        let by_principal = match binding.permission {
            Permission::Allow => &mut self.allows_by_principal,
            Permission::Deny => &mut self.denies_by_principal,
        };
        by_principal
            .entry(binding.principal.clone())
            .or_default()
            .entry(binding.operation)
            .or_default()
            .push(self.all.len());
        self.all.push(binding);
    }

    /// The `permission` bindings of `who` (its principal and `User:*`) that apply to its host and to
    /// `operation` exactly or through ALL.
    fn of<'s>(
        &'s self,
        permission: Permission,
        who: Requester<'s>,
        operation: Operation,
    ) -> impl Iterator<Item = &'s AclBinding> + 's {
        let by_principal = match permission {
            Permission::Allow => &self.allows_by_principal,
            Permission::Deny => &self.denies_by_principal,
        };
        let wildcard = (who.principal != WILDCARD_PRINCIPAL).then_some(WILDCARD_PRINCIPAL);
        let all = (operation != Operation::All).then_some(Operation::All);
        std::iter::once(who.principal)
            .chain(wildcard)
            .filter_map(move |p| by_principal.get(p))
            .flat_map(move |by_op| {
                std::iter::once(operation)
                    .chain(all)
                    .filter_map(move |op| by_op.get(&op))
            })
            .flatten()
            .map(move |&i| &self.all[i])
            .filter(move |b| applies_to(b, who))
    }

    /// Every group of bindings whose pattern matches the LITERAL resource `name`.
    fn matching<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s AclBinding> + use<'s, 'n> {
        let literal = self.literal.get(name).into_iter().flatten();
        let wildcard = (name != WILDCARD_RESOURCE)
            .then(|| self.literal.get(WILDCARD_RESOURCE))
            .flatten()
            .into_iter()
            .flatten();
        let prefixed = self
            .prefix_lengths
            .range(..=name.len())
            .filter_map(move |&len| name.get(..len).and_then(|prefix| self.prefixed.get(prefix)))
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }
}

impl AclIndex {
    pub fn new(
        bindings: impl IntoIterator<Item = AclBinding>,
        super_users: impl IntoIterator<Item = String>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Self {
        let mut index = AclIndex {
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found,
            ..AclIndex::default()
        };
        let unique: BTreeSet<AclBinding> = bindings.into_iter().collect();
        index.len = unique.len();
        for binding in unique {
            index.by_type[binding.resource_type.index()].insert(binding);
        }
        index
    }

    /// How many distinct bindings the policy holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every binding, grouped by resource type.
    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.by_type.iter().flat_map(|t| t.all.iter())
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// May `who` perform `operation` on the resource `resource_type`:`name` (a LITERAL name)?
    pub fn authorize<'a>(
        &'a self,
        who: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision<'a> {
        if self.is_super_user(who.principal) {
            return Decision::Allowed(Reason::SuperUser);
        }
        let mut any_for_resource = false;
        let mut allowed_by = None;
        for binding in self.by_type[resource_type.index()].matching(name) {
            any_for_resource = true;
            if !applies_to(binding, who) {
                continue;
            }
            match binding.permission {
                Permission::Deny if binding.operation.denies(operation) => {
                    return Decision::Denied(Reason::Binding(binding));
                }
                Permission::Allow if allowed_by.is_none() && binding.operation.allows(operation) => {
                    allowed_by = Some(binding);
                }
                _ => {}
            }
        }
        match (allowed_by, any_for_resource) {
            (Some(binding), _) => Decision::Allowed(Reason::Binding(binding)),
            (None, false) if self.allow_everyone_if_no_acl_found => Decision::Allowed(Reason::NoAclFound),
            (None, false) => Decision::Denied(Reason::NoAclFound),
            (None, true) => Decision::Denied(Reason::DefaultDeny),
        }
    }

    /// Is `operation` allowed on *some* resource of `resource_type` (Kafka's `authorizeByResourceType`, used
    /// for InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic)?
    /// An ALLOW counts unless a DENY for the same literal name, or for a prefix of it, dominates it; a DENY on
    /// the LITERAL `*` denies outright. Operations match exactly or through ALL, without implication.
    pub fn authorize_by_resource_type(
        &self,
        who: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        // Kafka first asks about a made-up name, so that super users (and the no-ACL default) are honoured.
        if self.authorize(who, operation, resource_type, "hardcode").is_allowed() {
            return true;
        }
        let index = &self.by_type[resource_type.index()];
        let mut deny_literal = std::collections::HashSet::new();
        let mut deny_prefixed = std::collections::HashSet::new();
        for deny in index.of(Permission::Deny, who, operation) {
            match deny.pattern_type {
                PatternType::Literal if deny.resource_name == WILDCARD_RESOURCE => return false,
                PatternType::Literal => deny_literal.insert(deny.resource_name.as_str()),
                PatternType::Prefixed => deny_prefixed.insert(deny.resource_name.as_str()),
            };
        }
        let wildcard_allowed = index
            .of(Permission::Allow, who, operation)
            .any(|b| b.pattern_type == PatternType::Literal && b.resource_name == WILDCARD_RESOURCE);
        if wildcard_allowed {
            return true;
        }
        index.of(Permission::Allow, who, operation).any(|allow| {
            let name = allow.resource_name.as_str();
            if allow.pattern_type == PatternType::Literal && deny_literal.contains(name) {
                return false;
            }
            // Dominated by a DENY on any prefix of the allowed name (the name itself included).
            !name
                .char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix))
        })
    }
}

/// Whether `binding`'s principal and host apply to `who` (the operation is checked by the caller).
fn applies_to(binding: &AclBinding, who: Requester<'_>) -> bool {
    (binding.principal == who.principal || binding.principal == WILDCARD_PRINCIPAL)
        && (binding.host == WILDCARD_HOST || binding.host == who.host)
}

/// A client address as Java's `InetAddress.getHostAddress()` writes it, which is what Kafka compares ACL
/// hosts with: IPv4 dotted; IPv6 as eight groups of lower-case hex without leading zeros and without `::`
/// compression (`0:0:0:0:0:0:0:1`); an IPv4-mapped IPv6 address as its IPv4 form (Java makes it an
/// Inet4Address).
pub fn java_host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    fn acl(
        rt: ResourceType,
        pt: PatternType,
        name: &str,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            pattern_type: pt,
            resource_name: name.into(),
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    fn topic(pt: PatternType, name: &str, principal: &str, op: Operation, perm: Permission) -> AclBinding {
        acl(ResourceType::Topic, pt, name, principal, "*", op, perm)
    }

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };
    const BOB: Requester<'static> = Requester {
        principal: "User:bob",
        host: "10.0.0.2",
    };
    use PatternType::{Literal, Prefixed};
    use Permission::{Allow, Deny};

    fn index(bindings: Vec<AclBinding>) -> AclIndex {
        AclIndex::new(bindings, ["User:admin".to_string()], false)
    }

    fn allowed(ix: &AclIndex, who: Requester<'_>, op: Operation, name: &str) -> bool {
        ix.authorize(who, op, ResourceType::Topic, name).is_allowed()
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_match_as_in_kafka() {
        let ix = index(vec![
            topic(Literal, "orders", "User:alice", Read, Allow),
            topic(Prefixed, "pay", "User:alice", Write, Allow),
            topic(Literal, "*", "User:bob", Describe, Allow),
            // A PREFIXED "*" is the literal prefix "*", not a wildcard.
            topic(Prefixed, "*", "User:alice", Alter, Allow),
        ]);
        assert!(allowed(&ix, ALICE, Read, "orders"));
        assert!(
            !allowed(&ix, ALICE, Read, "orders2"),
            "LITERAL matches the exact name only"
        );
        assert!(allowed(&ix, ALICE, Write, "payments") && allowed(&ix, ALICE, Write, "pay"));
        assert!(!allowed(&ix, ALICE, Write, "pa") && !allowed(&ix, ALICE, Write, "xpay"));
        assert!(allowed(&ix, BOB, Describe, "anything") && allowed(&ix, BOB, Describe, "orders"));
        assert!(!allowed(&ix, ALICE, Alter, "orders"));
        assert!(allowed(&ix, ALICE, Alter, "*weird"));
    }

    #[test]
    fn implied_operations_apply_to_allow_only() {
        for op in [Read, Write, Delete, Alter] {
            let ix = index(vec![topic(Literal, "t", "User:alice", op, Allow)]);
            assert!(allowed(&ix, ALICE, Describe, "t"), "ALLOW {op} implies DESCRIBE");
            assert!(!allowed(&ix, ALICE, Create, "t"));
        }
        let ix = index(vec![topic(Literal, "t", "User:alice", AlterConfigs, Allow)]);
        assert!(allowed(&ix, ALICE, DescribeConfigs, "t") && !allowed(&ix, ALICE, Describe, "t"));
        let ix = index(vec![topic(Literal, "t", "User:alice", All, Allow)]);
        for op in ResourceType::Topic.supported_operations() {
            assert!(allowed(&ix, ALICE, *op, "t"), "ALLOW ALL allows {op}");
        }
        // DENY READ does not deny DESCRIBE; DENY ALL denies everything.
        let ix = index(vec![
            topic(Literal, "t", "User:alice", All, Allow),
            topic(Literal, "t", "User:alice", Read, Deny),
        ]);
        assert!(!allowed(&ix, ALICE, Read, "t") && allowed(&ix, ALICE, Describe, "t"));
        let ix = index(vec![
            topic(Literal, "t", "User:alice", Read, Allow),
            topic(Prefixed, "t", "User:*", All, Deny),
        ]);
        assert!(!allowed(&ix, ALICE, Read, "t") && !allowed(&ix, ALICE, Describe, "t"));
    }

    #[test]
    fn deny_wins_and_the_reason_is_the_binding() {
        let deny = topic(Prefixed, "secret", "User:*", Read, Deny);
        let ix = index(vec![
            topic(Literal, "secret-orders", "User:alice", Read, Allow),
            deny.clone(),
        ]);
        assert_eq!(
            ix.authorize(ALICE, Read, ResourceType::Topic, "secret-orders"),
            Decision::Denied(Reason::Binding(&deny))
        );
        // Super users are allowed even over a DENY.
        let admin = Requester {
            principal: "User:admin",
            host: "10.0.0.9",
        };
        assert_eq!(
            ix.authorize(admin, Read, ResourceType::Topic, "secret-orders"),
            Decision::Allowed(Reason::SuperUser)
        );
    }

    #[test]
    fn the_default_applies_only_when_no_binding_matches_the_resource() {
        let bindings = vec![topic(Literal, "t", "User:bob", Read, Allow)];
        let strict = index(bindings.clone());
        assert_eq!(
            strict.authorize(ALICE, Read, ResourceType::Topic, "other"),
            Decision::Denied(Reason::NoAclFound)
        );
        assert_eq!(
            strict.authorize(ALICE, Read, ResourceType::Topic, "t"),
            Decision::Denied(Reason::DefaultDeny)
        );
        let open = AclIndex::new(bindings, Vec::new(), true);
        assert_eq!(
            open.authorize(ALICE, Read, ResourceType::Topic, "other"),
            Decision::Allowed(Reason::NoAclFound)
        );
        // A binding for someone else on the resource takes the default away.
        assert_eq!(
            open.authorize(ALICE, Read, ResourceType::Topic, "t"),
            Decision::Denied(Reason::DefaultDeny)
        );
        // Bindings of another resource type do not count.
        let open = AclIndex::new(
            vec![acl(ResourceType::Group, Literal, "t", "User:bob", "*", Read, Allow)],
            Vec::new(),
            true,
        );
        assert!(open.authorize(ALICE, Read, ResourceType::Topic, "t").is_allowed());
    }

    #[test]
    fn principal_and_host_match_exactly_or_by_wildcard() {
        let ix = index(vec![
            acl(ResourceType::Group, Literal, "g", "User:alice", "10.0.0.1", Read, Allow),
            acl(ResourceType::Group, Literal, "g2", "User:*", "*", Read, Allow),
        ]);
        let group = |who, name| ix.authorize(who, Read, ResourceType::Group, name).is_allowed();
        assert!(group(ALICE, "g"));
        assert!(!group(
            Requester {
                principal: "User:alice",
                host: "10.0.0.2"
            },
            "g"
        ));
        assert!(
            !group(
                Requester {
                    principal: "User:Alice",
                    host: "10.0.0.1"
                },
                "g"
            ),
            "principals are case-sensitive"
        );
        assert!(
            group(BOB, "g2")
                && group(
                    Requester {
                        principal: "Group:ops",
                        host: "::1"
                    },
                    "g2"
                )
        );
    }

    #[test]
    fn authorize_by_resource_type_follows_kafkas_dominance_rules() {
        let by_type =
            |bindings: Vec<AclBinding>| index(bindings).authorize_by_resource_type(ALICE, Write, ResourceType::Topic);
        assert!(!by_type(vec![]), "no ACL and allow_everyone_if_no_acl_found=false");
        assert!(by_type(vec![topic(Literal, "t", "User:alice", Write, Allow)]));
        assert!(by_type(vec![topic(Prefixed, "p", "User:*", All, Allow)]));
        assert!(
            !by_type(vec![topic(Literal, "t", "User:alice", Read, Allow)]),
            "no implication: READ is not WRITE"
        );
        assert!(!by_type(vec![
            topic(Literal, "t", "User:alice", Write, Allow),
            topic(Literal, "t", "User:alice", Write, Deny)
        ]));
        assert!(!by_type(vec![
            topic(Literal, "tx", "User:alice", Write, Allow),
            topic(Prefixed, "t", "User:*", Write, Deny)
        ]));
        assert!(by_type(vec![
            topic(Prefixed, "t", "User:alice", Write, Allow),
            topic(Prefixed, "tx", "User:*", Write, Deny)
        ]));
        assert!(!by_type(vec![
            topic(Literal, "t", "User:alice", Write, Allow),
            topic(Literal, "*", "User:alice", All, Deny)
        ]));
        assert!(by_type(vec![
            topic(Literal, "*", "User:alice", Write, Allow),
            topic(Literal, "t", "User:alice", Write, Deny)
        ]));
        // Super users, and the no-ACL default, through the made-up name.
        let admin = Requester {
            principal: "User:admin",
            host: "1.2.3.4",
        };
        assert!(index(vec![]).authorize_by_resource_type(admin, Write, ResourceType::Topic));
        assert!(AclIndex::new(Vec::new(), Vec::new(), true).authorize_by_resource_type(
            ALICE,
            Write,
            ResourceType::Topic
        ));
    }

    #[test]
    fn duplicates_count_once_and_everything_is_listed() {
        let b = topic(Literal, "t", "User:alice", Read, Allow);
        let ix = index(vec![
            b.clone(),
            b.clone(),
            acl(
                ResourceType::Cluster,
                Literal,
                CLUSTER_NAME,
                "User:ops",
                "*",
                Alter,
                Allow,
            ),
        ]);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.bindings().count(), 2);
        assert_eq!(
            b.to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) on Topic:LITERAL:t"
        );
    }

    #[test]
    fn java_host_address_forms() {
        assert_eq!(java_host_address("192.168.1.20".parse().unwrap()), "192.168.1.20");
        assert_eq!(java_host_address("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(
            java_host_address("2001:db8::ff00:42:8329".parse().unwrap()),
            "2001:db8:0:0:0:ff00:42:8329"
        );
        assert_eq!(java_host_address("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[test]
    fn resource_type_codes_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(t.code()), Some(t));
        }
        assert_eq!(ResourceType::from_code(1), None, "ANY is a filter, not a resource type");
    }
}
