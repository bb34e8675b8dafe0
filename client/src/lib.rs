//! regent-client: talk to the regent agent (`regentd`) from Rust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), regent_client::ClientError> {
//! use regent_client::AgentClient;
//! use regent_proto::TokenRequest;
//!
//! // The socket resolved as the CLI does: $REGENT_SOCKET, $XDG_RUNTIME_DIR/regent/agent.sock, ...
//! let agent = AgentClient::from_env();
//! let token = agent
//!     .token(&TokenRequest { registry: Some("corp".into()), ..Default::default() })
//!     .await?;
//! println!("Authorization: Bearer {}", token.access_token);
//! # Ok(()) }
//! ```

mod agent;

pub use agent::{AgentClient, ApiFailure, ClientError};
pub use regent_proto as proto;
