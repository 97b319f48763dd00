//! Row-level security on the shared tables: the application role that tenant traffic runs as,
//! and the policy on every table with a `tenant_id` column.

use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::ConnectionTrait;
use tenancy_core::{Error, Result, quote_ident};

/// The tables of `public` that have a `tenant_id` column (the tenant tables of the shared
/// schema, as `c`): the `FROM` and `WHERE` of a query, which may go on with `AND ...`.
pub(crate) const TENANT_TABLES_FROM: &str = "
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')";

// ANCHOR: secure_tables
/// Puts every table of `public` that has a `tenant_id` column under row-level security
/// and grants the application role what tenant traffic needs. Idempotent; runs after
/// every migration, so a table added later cannot be left without a policy.
///
/// On a Citus coordinator (`citus`) the role may log in, because the coordinator reaches the
/// workers as the role a statement runs as; and the policy compares with the setting
/// directly, as Citus cannot send a policy holding a sub-select to its shards (the setting is
/// stable within a statement, so the index on `tenant_id` still serves).
pub(crate) async fn secure_tables(
    conn: &impl ConnectionTrait,
    app_role: &str,
    citus: bool,
) -> Result<()> {
    let role = quote_ident(app_role);
    let role_literal = format!("'{}'", app_role.replace('\'', "''"));
    // Inside a quoted format() string: quotes doubled.
    let setting = "NULLIF(current_setting(''tenancy.tenant_id'', true), '''')::uuid";
    let setting = if citus {
        setting.to_owned()
    } else {
        format!("(SELECT {setting})")
    };
    // Only when it cannot log in yet: the role is cluster-wide, and two databases installing
    // at once would both update its row ("tuple concurrently updated").
    // FORCE subjects the tables' owner to the policy too. On Citus it stays off: Citus moves
    // and splits shards by logical replication as a role with the owner's rights, and
    // PostgreSQL refuses to replicate into a table whose policy applies to that role ("cannot
    // replicate into relation with row-level security enabled"). Tenant traffic runs as the
    // application role, which owns nothing, so the policy holds for it either way.
    let force = if citus { "NO FORCE" } else { "FORCE" };
    let login = if citus {
        format!(
            "DO $$ BEGIN IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = {role_literal}) \
             THEN ALTER ROLE {role} LOGIN; END IF; END $$;"
        )
    } else {
        String::new()
    };
    // The role is cluster-wide: two databases installing at once may race to create it.
    conn.execute_unprepared(&format!(
        r#"
DO $$
BEGIN
    -- Only when missing: CREATE ROLE needs the CREATEROLE privilege even for a duplicate.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role_literal}) THEN
        CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    -- The connecting role must be able to SET ROLE to the application role.
    IF NOT pg_has_role(current_user, '{role_lit}', 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', '{role_lit}', current_user);
    END IF;
END $$;
{login}
GRANT USAGE ON SCHEMA public TO {role};
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT c.relname {TENANT_TABLES_FROM}
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE public.%I {force} ROW LEVEL SECURITY', t.relname);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON public.%I', t.relname);
        -- On one server (SELECT ...) makes the setting an init-plan evaluated once per statement, so the
        -- comparison can use the index on tenant_id. NULLIF: an unset or reset setting is
        -- '' or NULL, which matches no row.
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I '
            'USING (tenant_id = {setting}) WITH CHECK (tenant_id = {setting})',
            t.relname);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO %I', t.relname, '{role_lit}');
    END LOOP;
END $$;
"#,
        role_lit = app_role,
    ))
    .await?;
    Ok(())
}
// ANCHOR_END: secure_tables

// ANCHOR: tie_to_catalog
/// Gives every table of `public` that has a `tenant_id` column a foreign key to the catalog
/// (`tenancy_tenant_exists`), so that the database refuses a row for a tenant that is not in
/// it: a process that still has a deleted tenant cached cannot write for it, and a delete
/// cannot remove the catalog row while a row of the tenant remains. Idempotent and cheap when
/// every table has it; runs at every start and after every migration.
///
/// On a Citus coordinator (`citus`) the key refers to the catalog's reference table of ids,
/// `tenancy.tenant_keys` ([`crate::citus`]), the one table of the catalog a distributed
/// table may refer to.
pub(crate) async fn tie_to_catalog(conn: &impl ConnectionTrait, citus: bool) -> Result<()> {
    let catalog = if citus {
        crate::citus::keep_tenant_keys(conn).await?;
        "tenancy.tenant_keys"
    } else {
        "tenancy.tenants"
    };
    conn.execute_unprepared(&format!(
        r#"
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT c.relname {TENANT_TABLES_FROM}
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                          WHERE k.conrelid = c.oid AND k.conname = 'tenancy_tenant_exists')
    LOOP
        EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT tenancy_tenant_exists '
                       'FOREIGN KEY (tenant_id) REFERENCES {catalog} (id)', t.relname);
    END LOOP;
END $$;
"#
    ))
    .await?;
    Ok(())
}
// ANCHOR_END: tie_to_catalog

// ANCHOR: check_in_force
/// Refuses to serve tenants when row-level security would not hold: a tenant table without
/// `ENABLE` and `FORCE ROW LEVEL SECURITY` or without the policy, a tenant table the
/// application role owns, or an application role that is a superuser or has `BYPASSRLS`
/// (each of which lets every row through). Runs at every start, after the install, so a
/// database changed by hand since is caught before the first request.
///
/// On a Citus coordinator (`citus`) `FORCE` is not asked for (see [`secure_tables`]): the
/// application role owning no tenant table is what keeps the policy on its statements.
pub(crate) async fn check_in_force(
    conn: &impl ConnectionTrait,
    app_role: &str,
    citus: bool,
) -> Result<()> {
    let mut problems = Vec::new();
    let role = conn
        .query_one_raw(stmt(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
            [app_role.into()],
        ))
        .await?;
    match role {
        None => problems.push(format!("the application role {app_role:?} does not exist")),
        Some(r) => {
            if r.try_get::<bool>("", "rolsuper")? {
                problems.push(format!(
                    "the application role {app_role:?} is a superuser (ALTER ROLE ... NOSUPERUSER)"
                ));
            }
            if r.try_get::<bool>("", "rolbypassrls")? {
                problems.push(format!(
                    "the application role {app_role:?} has BYPASSRLS (ALTER ROLE ... NOBYPASSRLS)"
                ));
            }
        }
    }
    let tables = conn
        .query_all_raw(stmt(
            &format!(
                "SELECT c.relname::text AS name, c.relrowsecurity AS enabled, \
                        c.relforcerowsecurity AS forced, \
                        pg_get_userbyid(c.relowner) = $1 AS owned, \
                        EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid \
                                AND p.polname = 'tenant_isolation') AS policy \
                 {TENANT_TABLES_FROM} ORDER BY 1"
            ),
            [app_role.into()],
        ))
        .await?;
    for t in tables {
        let name: String = t.try_get("", "name")?;
        for (column, what) in [
            ("enabled", "ENABLE ROW LEVEL SECURITY"),
            ("forced", "FORCE ROW LEVEL SECURITY"),
            ("policy", "the tenant_isolation policy"),
        ] {
            if citus && column == "forced" {
                continue;
            }
            if !t.try_get::<bool>("", column)? {
                problems.push(format!("table public.{name} lacks {what}"));
            }
        }
        if t.try_get::<bool>("", "owned")? {
            problems.push(format!(
                "table public.{name} is owned by the application role {app_role:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Insecure(format!(
            "row-level security is not in force: {}",
            problems.join("; ")
        )))
    }
}
// ANCHOR_END: check_in_force
