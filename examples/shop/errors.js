// What a customer or a shop assistant is told when a database call fails,
// by SQLSTATE (err.code in node-postgres).  loyalty's own codes are class LY
// (docs/api.md#sqlstates, src/loyalty_errors.h); the others are
// PostgreSQL's.  err.message, err.detail and err.hint are for the log, not
// for the customer: they name keys, references and internal functions.

const messages = {
  // loyalty
  LY001: 'You do not have enough points for this yet.',
  LY002: 'This customer is not a member of the loyalty program.',
  LY003: 'The loyalty program is not set up (ask the administrator).',
  LY004: 'This request number was already used for something else.',
  LY010: 'Sorry, this reward is out of stock.',
  LY011: 'This reward is reserved for another tier.',
  LY012: 'You already had this reward in this period.',
  LY013: 'There is no such reward.',
  LY014: 'This reward is not available at the moment.',
  LY015: 'There is no such redemption to cancel.',
  LY016: 'Donations to this account are not possible.',
  LY017: 'This action earns no points.',
  LY018: 'You reached the limit of points for this action.',
  LY019: 'This referral does not qualify.',
  LY021: 'Several customers used this number; say whose redemption to cancel.',
  // PostgreSQL
  '23505': 'This was already recorded.',                       // unique_violation
  '23514': 'A value is out of the allowed range.',             // check_violation
  '22P02': 'That is not a valid customer or order number.',    // invalid_text_representation
  '22003': 'The amount is too large.',                         // numeric_value_out_of_range
  '22023': 'A value was not accepted.',                        // invalid_parameter_value
  '42501': 'The shop is not allowed to do that.',              // insufficient_privilege
  '40001': 'Busy, please try again.',                          // serialization_failure
  '40P01': 'Busy, please try again.',                          // deadlock_detected
  '55P03': 'Busy, please try again.',                          // lock_not_available
  '57014': 'That took too long; please try again.',            // query_canceled
  '57P01': 'The connection was lost; please try again.',       // admin_shutdown
};

export function userMessage(err) {
  return messages[err.code] ?? 'Something went wrong; please try again later.';
}

// Worth retrying as it was: the same call with the same reference is safe,
// it has at most one effect.  When the connection broke (class 08, a
// server that is shutting down or terminated the session, 57P01-57P03, or
// a socket error) the call may or may not have committed; the reference
// makes the retry harmless, and the pool gives it another connection.
export function isTransient(err) {
  return ['40001', '40P01', '55P03', '57P01', '57P02', '57P03'].includes(err.code) ||
    (typeof err.code === 'string' && err.code.startsWith('08')) ||
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(err.code);
}
