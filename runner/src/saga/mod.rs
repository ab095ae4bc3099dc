//! The saga: the pure state machine ([`machine`]) and the orchestrator that runs it against
//! the broker and the database ([`orchestrator`]), with canary routing of one step ([`canary`]).

pub mod canary;
pub mod machine;
pub mod orchestrator;

#[cfg(test)]
mod tests;
