//! regent-client: talk to the regent agent (`regentd`) from Rust, and read
//! MCP registries with the tokens it gives.
//!
//! A token for your own HTTP client:
//!
//! ```no_run
//! # async fn demo() -> Result<(), regent_client::ClientError> {
//! use regent_client::AgentClient;
//! use regent_proto::TokenRequest;
//!
//! // The socket is found as the CLI finds it: $REGENT_SOCKET, $XDG_RUNTIME_DIR/regent/agent.sock,
//! // ..., else the one the running agent recorded (cron, sudo -u, ssh sessions).
//! let agent = AgentClient::from_env();
//! let token = agent
//!     .token(&TokenRequest { registry: Some("corp".into()), ..Default::default() })
//!     .await?;
//! println!("Authorization: Bearer {}", token.access_token);
//! # Ok(()) }
//! ```
//!
//! Or let [`RegistryClient`] do the Bearer dance (the token only to the
//! registry's origin; on a 401, invalidate, refresh and retry once):
//!
//! ```no_run
//! # async fn demo() -> Result<(), regent_client::RegistryError> {
//! use regent_client::{AgentClient, RegistryClient};
//!
//! let agent = AgentClient::from_env();
//! let registries = agent.registries().await?;
//! let corp = registries.iter().find(|r| r.name == "corp").expect("configured");
//! let client = RegistryClient::new(agent.clone());
//! for entry in client.list_all(corp, None).await? {
//!     println!("{} {}", entry["server"]["name"], entry["server"]["version"]);
//! }
//! # Ok(()) }
//! ```

mod agent;
pub mod blocking;
pub mod http;
pub mod locate;
pub mod mcp;
mod registry;
pub mod relay;
pub mod resource;
pub mod sse;
pub mod text;

pub use agent::{AgentClient, ApiFailure, ClientError};
pub use regent_proto as proto;
pub use registry::{Page, RegistryClient, RegistryError};
