//! The second signal exits at once, without waiting for the safe point.
//! While a run is in progress the engine leaves its last words with the
//! [`crate::runbook::Interrupt`]: journal the interruption, unless the engine
//! already did, and close the journal. So the journal always says the run
//! was interrupted (and at which step), and the exit cuts no line. The
//! mirror to the cluster may miss that last line; the file has it.

use super::Engine;
use crate::runbook::journal::Event;
use std::sync::Arc;

impl Engine<'_> {
    /// From the first step of a run (or a resume) until [`Engine::close`].
    pub(crate) fn arm_last_words(&self) {
        let journal = Arc::clone(&self.journal);
        let run_id = self.run_id.clone();
        let by = self.rb.actor.clone();
        let said = Arc::clone(&self.interruption_said);
        let step = Arc::clone(&self.current_step);
        self.rb
            .interrupt
            .set_last_words(Some(Box::new(move |reason: &str| {
                let mut said = said.lock();
                let event = (!*said).then(|| Event::RunInterrupted {
                    step: *step.lock(),
                    reason: reason.to_string(),
                    by: by.clone(),
                });
                if journal.append_last(&run_id, event).is_ok() {
                    *said = true;
                }
            })));
    }

    pub(super) fn disarm_last_words(&self) {
        self.rb.interrupt.set_last_words(None);
    }
}
