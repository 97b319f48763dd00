//! The shared tables on a Citus coordinator: every table of `public` with a `tenant_id`
//! column distributed by it, all in one co-location group (a tenant's rows of every table on
//! the same node, so a join or a foreign key within a tenant stays on one node), and every
//! table of `public` without one that a tenant migration created or a tenant table refers to
//! a reference table (copied whole to every node, so tenant tables may refer to it). Other tables (migration ledgers,
//! an application's own tables outside the tenants') stay on the coordinator.
//!
//! The tie to the catalog changes on Citus: a distributed table may not refer to a local one,
//! and the catalog cannot be a reference table (its change trigger notifies, and a prepared
//! transaction may not). So the catalog keeps a reference table of the ids it holds,
//! `tenancy.tenant_keys`, filled and emptied by a trigger on `tenancy.tenants` in the same
//! transaction, and the tenant tables refer to that. A write for a deleted tenant is refused
//! on the worker, and the catalog row cannot go while a row of the tenant remains.
//!
//! A tenant moves to another worker ([`NodePlacement`]) by isolating it into shards of its
//! own (`isolate_tenant_to_new_shard`, every co-located table) and moving those
//! (`citus_move_shard_placement`), both online.

use tenancy_core::plumbing::StrategyDoor;
use tenancy_core::plumbing::citus::{Node, NodePlacement};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{Error, Result, Tenant, TenantId};

use crate::SharedSchemaStore;

use crate::security::TENANT_TABLES_FROM;

// ANCHOR: distribute
/// Distributes what the migrations left local in `public`: the reference data first (tables
/// without `tenant_id` that a tenant table refers to, or that the last migration created,
/// whose oids are `created`), then the tenant tables, each once every table it refers to is
/// distributed, co-located with the first. Idempotent. A table that cannot be placed (a
/// foreign key Citus cannot follow) is refused with [`Error::Unsupported`], naming it.
pub(crate) async fn distribute_tables(conn: &impl ConnectionTrait, created: &[i64]) -> Result<()> {
    // Oids are numbers we read from the catalog: safe as literals.
    let created = created
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // What is placed: the tenant tables of public, the tables of public they refer to, and
    // the tables the last tenant migration created (reference data). The catalog's and the
    // application's other tables (migration ledgers, accounts) stay on the coordinator.
    let candidates = format!(
        "SELECT c.oid, true AS tenant {TENANT_TABLES_FROM} AND NOT c.relispartition
    UNION
    SELECT r.oid, false
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    JOIN pg_class r ON r.oid = k.confrelid
    JOIN pg_namespace rn ON rn.oid = r.relnamespace
    WHERE k.contype = 'f' AND n.nspname = 'public' AND rn.nspname = 'public'
      AND NOT EXISTS (SELECT 1 FROM pg_attribute ra WHERE ra.attrelid = r.oid
                      AND ra.attname = 'tenant_id' AND NOT ra.attisdropped)
    UNION
    SELECT c.oid, false FROM pg_class c
    WHERE c.oid = ANY('{{{created}}}'::oid[]) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                      AND a.attname = 'tenant_id' AND NOT a.attisdropped)"
    );
    // A database installed on one server before the extension was added: its foreign keys to
    // the local catalog would stop the distribution. tie_to_catalog puts them back, to the
    // reference table of keys.
    conn.execute_unprepared(&format!(
        r#"
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT c.relname {TENANT_TABLES_FROM}
          AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid
                      AND k.conname = 'tenancy_tenant_exists'
                      AND k.confrelid = 'tenancy.tenants'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT tenancy_tenant_exists', t.relname);
    END LOOP;
END $$;
DO $$
DECLARE
    t record;
    anchor text;
    progress boolean := true;
BEGIN
    WHILE progress LOOP
        progress := false;
        -- Local candidates (tenant tables and reference data), each once
        -- everything it refers to is distributed.
        FOR t IN
            SELECT c.oid::regclass::text AS rel, c.tenant
            FROM ({candidates}) c
            WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                              WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid <> c.oid
                                AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p
                                                WHERE p.logicalrelid = k.confrelid))
            ORDER BY c.tenant, c.oid
        LOOP
            IF NOT t.tenant THEN
                PERFORM create_reference_table(t.rel);
            ELSE
                SELECT p.logicalrelid::regclass::text INTO anchor
                FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND p.partmethod = 'h'
                ORDER BY p.logicalrelid LIMIT 1;
                PERFORM create_distributed_table(t.rel, 'tenant_id',
                                                 colocate_with => coalesce(anchor, 'default'));
            END IF;
            progress := true;
        END LOOP;
    END LOOP;
END $$;
"#
    ))
    .await?;
    let left = conn
        .query_all_raw(stmt(
            &format!(
                "SELECT c.oid::regclass::text AS name FROM ({candidates}) c \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid) \
                 ORDER BY 1"
            ),
            [],
        ))
        .await?;
    if left.is_empty() {
        return Ok(());
    }
    let names = left
        .iter()
        .map(|r| r.try_get::<String>("", "name"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Err(Error::Unsupported(format!(
        "Citus cannot distribute {}: each refers to a table outside public or to one that \
         cannot be distributed; a tenant table may refer only to tenant tables (with \
         tenant_id in the key) and to tables of public without tenant_id (made reference \
         tables)",
        names.join(", ")
    )))
}
// ANCHOR_END: distribute

// ANCHOR: tenant_keys
/// The reference table of the catalog's ids and the trigger that keeps it (see the module).
/// Idempotent; fills the table from the catalog the first time.
pub(crate) async fn keep_tenant_keys(conn: &impl ConnectionTrait) -> Result<()> {
    conn.execute_unprepared(
        r#"
DO $$
BEGIN
    IF to_regclass('tenancy.tenant_keys') IS NULL THEN
        CREATE TABLE tenancy.tenant_keys (id uuid PRIMARY KEY);
        PERFORM create_reference_table('tenancy.tenant_keys');
        INSERT INTO tenancy.tenant_keys (id) SELECT id FROM tenancy.tenants;
    END IF;
END $$;
CREATE OR REPLACE FUNCTION tenancy.keep_tenant_keys() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tenancy.tenant_keys (id) VALUES (NEW.id);
    ELSE
        DELETE FROM tenancy.tenant_keys WHERE id = OLD.id;
    END IF;
    RETURN NULL;
END $f$;
CREATE OR REPLACE TRIGGER tenants_keep_keys AFTER INSERT OR DELETE ON tenancy.tenants
    FOR EACH ROW EXECUTE FUNCTION tenancy.keep_tenant_keys();
"#,
    )
    .await?;
    Ok(())
}
// ANCHOR_END: tenant_keys

/// The oids of the tables of `public`, to tell afterwards which tables a migration created.
pub(crate) async fn public_tables(conn: &impl ConnectionTrait) -> Result<Vec<i64>> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT c.oid::bigint AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            [],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<i64>("", "oid"))
        .collect::<std::result::Result<_, _>>()?)
}

// ANCHOR: node_placement
/// The first distributed tenant table, whose shard for a tenant names where the tenant is
/// (every other tenant table is co-located with it).
async fn anchor_table(conn: &impl ConnectionTrait) -> Result<String> {
    conn.query_one_raw(stmt(
        "SELECT p.logicalrelid::regclass::text AS t FROM pg_dist_partition p \
         JOIN pg_class c ON c.oid = p.logicalrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND p.partmethod = 'h' ORDER BY p.logicalrelid LIMIT 1",
        [],
    ))
    .await?
    .map(|r| r.try_get::<String>("", "t"))
    .transpose()?
    .ok_or_else(|| Error::Unsupported("no tenant table is distributed".into()))
}

/// The shard of the anchor table that holds `tenant`, where it is, and whether it holds that
/// tenant alone (isolated: its hash range is the tenant's one value).
async fn tenant_shard(conn: &impl ConnectionTrait, tenant: TenantId) -> Result<(i64, Node, bool)> {
    let anchor = anchor_table(conn).await?;
    let row = conn
        .query_one_raw(stmt(
            "SELECT s.shardid, p.nodename, p.nodeport, s.shardminvalue = s.shardmaxvalue AS alone \
             FROM pg_dist_shard s JOIN citus_shards p ON p.shardid = s.shardid \
             WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::uuid)",
            [anchor.into(), tenant.as_uuid().into()],
        ))
        .await?
        .ok_or_else(|| Error::Unsupported(format!("no shard holds tenant {tenant}")))?;
    Ok((
        row.try_get("", "shardid")?,
        Node {
            host: row.try_get("", "nodename")?,
            port: u16::try_from(row.try_get::<i32>("", "nodeport")?)
                .map_err(|e| Error::invalid("node", e.to_string()))?,
        },
        row.try_get("", "alone")?,
    ))
}

#[async_trait::async_trait]
impl NodePlacement for SharedSchemaStore {
    fn catalog(&self) -> &DatabaseConnection {
        self.connection(StrategyDoor)
    }

    async fn node_of(&self, tenant: &Tenant) -> Result<Node> {
        Ok(tenant_shard(self.catalog(), tenant.id).await?.1)
    }

    /// Splits the tenant's shards (of every co-located table) so that it has shards of its
    /// own: the other tenants of those shards keep their rows, and their writes wait for the
    /// split's short switch.
    async fn isolate(&self, tenant: &Tenant) -> Result<()> {
        let conn = self.catalog();
        if tenant_shard(conn, tenant.id).await?.2 {
            return Ok(());
        }
        let anchor = anchor_table(conn).await?;
        conn.execute_raw(stmt(
            "SELECT isolate_tenant_to_new_shard($1::regclass, $2::uuid, 'CASCADE')",
            [anchor.into(), tenant.id.as_uuid().into()],
        ))
        .await?;
        Ok(())
    }

    async fn relocate(&self, tenant: &Tenant, from: &Node, to: &Node) -> Result<()> {
        let conn = self.catalog();
        let (shard, _, _) = tenant_shard(conn, tenant.id).await?;
        conn.execute_raw(stmt(
            "SELECT citus_move_shard_placement($1, $2, $3, $4, $5)",
            [
                shard.into(),
                from.host.clone().into(),
                i32::from(from.port).into(),
                to.host.clone().into(),
                i32::from(to.port).into(),
            ],
        ))
        .await?;
        Ok(())
    }
}
// ANCHOR_END: node_placement
