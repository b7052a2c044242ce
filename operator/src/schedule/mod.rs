//! Time: cron schedules in a time zone, and which runs of a RetrainSchedule are due.

pub mod cron;
pub mod due;
