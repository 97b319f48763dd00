//! The tenant API, under `/api` (tenant from header or subdomain) and `/t/{tenant}/api`.
//! Every handler takes a scope bound to the caller's tenant ([`Scoped`], [`ScopedRead`]),
//! runs the domain code from core in it, and commits what it wrote.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use tenancy_core::{Page, PageRequest};
use tenancy_example::projects::{self, NewProject, Project, ProjectPatch, ProjectSummary};
use tenancy_example::tasks::{self, NewTask, Task, TaskPatch};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::scoped::{Scoped, ScopedRead};

/// `?limit=&after=` for keyset paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<Uuid>,
}

impl From<PageQuery> for PageRequest {
    fn from(q: PageQuery) -> Self {
        PageRequest {
            limit: q.limit.unwrap_or(50),
            after: q.after,
        }
    }
}

/// The `{id}` segment of the path, as written. (Not `web::Path`: under `/t/{tenant}/api` the
/// path holds the tenant too.)
#[derive(Debug)]
pub struct PathId(String);

impl actix_web::FromRequest for PathId {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(PathId(req.match_info().query("id").to_owned())))
    }
}

/// An id from the path; one that is not a UUID names nothing.
fn id(raw: &PathId, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&raw.0).map_err(|_| ApiError::NotFound(format!("{what} not found")))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/projects")
            .default_service(crate::problem::allow("GET, POST"))
            .route(web::get().to(list_projects))
            .route(web::post().to(create_project)),
    )
    .service(
        web::resource("/projects/{id}")
            .default_service(crate::problem::allow("GET, PATCH, DELETE"))
            .route(web::get().to(get_project))
            .route(web::patch().to(update_project))
            .route(web::delete().to(delete_project)),
    )
    .service(
        web::resource("/projects/{id}/tasks")
            .default_service(crate::problem::allow("GET, POST"))
            .route(web::get().to(list_tasks))
            .route(web::post().to(create_task)),
    )
    .service(
        web::resource("/tasks/{id}")
            .default_service(crate::problem::allow("GET, PATCH, DELETE"))
            .route(web::get().to(get_task))
            .route(web::patch().to(update_task))
            .route(web::delete().to(delete_task)),
    )
    .service(
        web::resource("/summary")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(summary)),
    );
}

/// List the tenant's projects.
#[utoipa::path(get, path = "/api/projects", tag = "tenant", params(PageQuery),
    responses((status = 200, body = inline(Page<Project>)), (status = 401, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list_projects(
    q: web::Query<PageQuery>,
    scope: ScopedRead,
) -> Result<web::Json<Page<Project>>, ApiError> {
    Ok(web::Json(
        projects::list(&scope, q.into_inner().into()).await?,
    ))
}

/// Create a project.
#[utoipa::path(post, path = "/api/projects", tag = "tenant", request_body = NewProject,
    responses((status = 201, body = Project), (status = 409, body = crate::problem::Problem),
               (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create_project(
    body: crate::body::Body<NewProject>,
    scope: Scoped,
) -> Result<HttpResponse, ApiError> {
    scope.ensure_room(tenancy_example::PROJECTS, 1).await?;
    let p = projects::create(&scope, body.into_inner()).await?;
    scope.commit().await?;
    Ok(HttpResponse::Created().json(p))
}

/// One project.
#[utoipa::path(get, path = "/api/projects/{id}", tag = "tenant",
    responses((status = 200, body = Project), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
// ANCHOR: get_project
pub async fn get_project(path: PathId, scope: ScopedRead) -> Result<web::Json<Project>, ApiError> {
    let id = id(&path, "project")?;
    Ok(web::Json(projects::get(&scope, id).await?))
}
// ANCHOR_END: get_project

/// Change a project's name or description.
#[utoipa::path(patch, path = "/api/projects/{id}", tag = "tenant", request_body = ProjectPatch,
    responses((status = 200, body = Project), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn update_project(
    path: PathId,
    body: crate::body::Body<ProjectPatch>,
    scope: Scoped,
) -> Result<web::Json<Project>, ApiError> {
    let p = projects::update(&scope, id(&path, "project")?, body.into_inner()).await?;
    scope.commit().await?;
    Ok(web::Json(p))
}

/// Delete a project and its tasks.
#[utoipa::path(delete, path = "/api/projects/{id}", tag = "tenant",
    responses((status = 204), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn delete_project(path: PathId, scope: Scoped) -> Result<HttpResponse, ApiError> {
    projects::delete(&scope, id(&path, "project")?).await?;
    scope.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A project's tasks; an unknown project is a 404, not an empty list.
#[utoipa::path(get, path = "/api/projects/{id}/tasks", tag = "tenant", params(PageQuery),
    responses((status = 200, body = inline(Page<Task>)), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list_tasks(
    path: PathId,
    q: web::Query<PageQuery>,
    scope: ScopedRead,
) -> Result<web::Json<Page<Task>>, ApiError> {
    Ok(web::Json(
        tasks::list(&scope, id(&path, "project")?, q.into_inner().into()).await?,
    ))
}

/// Add a task to a project.
#[utoipa::path(post, path = "/api/projects/{id}/tasks", tag = "tenant", request_body = NewTask,
    responses((status = 201, body = Task), (status = 404, body = crate::problem::Problem),
              (status = 409, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create_task(
    path: PathId,
    body: crate::body::Body<NewTask>,
    scope: Scoped,
) -> Result<HttpResponse, ApiError> {
    let project = id(&path, "project")?;
    scope.ensure_room(tenancy_example::TASKS, 1).await?;
    let t = tasks::create(&scope, project, body.into_inner()).await?;
    scope.commit().await?;
    Ok(HttpResponse::Created().json(t))
}

/// One task.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tenant",
    responses((status = 200, body = Task), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_task(path: PathId, scope: ScopedRead) -> Result<web::Json<Task>, ApiError> {
    Ok(web::Json(tasks::get(&scope, id(&path, "task")?).await?))
}

/// Change a task's title or mark it done.
#[utoipa::path(patch, path = "/api/tasks/{id}", tag = "tenant", request_body = TaskPatch,
    responses((status = 200, body = Task), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn update_task(
    path: PathId,
    body: crate::body::Body<TaskPatch>,
    scope: Scoped,
) -> Result<web::Json<Task>, ApiError> {
    let t = tasks::update(&scope, id(&path, "task")?, body.into_inner()).await?;
    scope.commit().await?;
    Ok(web::Json(t))
}

/// Delete a task.
#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tenant",
    responses((status = 204), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn delete_task(path: PathId, scope: Scoped) -> Result<HttpResponse, ApiError> {
    tasks::delete(&scope, id(&path, "task")?).await?;
    scope.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Projects with their open and done task counts.
#[utoipa::path(get, path = "/api/summary", tag = "tenant", params(PageQuery),
    responses((status = 200, body = inline(Page<ProjectSummary>))),
    security(("bearer" = [])))]
pub async fn summary(
    q: web::Query<PageQuery>,
    scope: ScopedRead,
) -> Result<web::Json<Page<ProjectSummary>>, ApiError> {
    Ok(web::Json(
        projects::summary(&scope, q.into_inner().into()).await?,
    ))
}
