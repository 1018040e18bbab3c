//! ReferenceGrants: a namespace's consent to be referred to from another namespace.

use super::object::{namespace, Context};

/// Whether a `from_kind` in `from_ns` may refer to `to_kind` `to_name` in `to_ns`.
#[allow(clippy::too_many_arguments)]
pub fn permits(
    ctx: &Context<'_>,
    from_group: &str,
    from_kind: &str,
    from_ns: &str,
    to_group: &str,
    to_kind: &str,
    to_ns: &str,
    to_name: &str,
) -> bool {
    ctx.input.reference_grants.iter().any(|g| {
        namespace(&g.metadata) == to_ns
            && g.spec
                .from
                .iter()
                .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns)
            && g.spec.to.iter().any(|t| {
                t.group == to_group
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            })
    })
}
