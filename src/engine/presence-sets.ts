import { InvalidArgumentError } from '../errors.js'

/** The presence set of users online on any facility (facility names are never empty). */
export const OVERALL = ''

/** The error of a presence join or leave without a facility: a connection counts on its own. */
export const facilityMissing = (): InvalidArgumentError =>
  new InvalidArgumentError('a presence join or leave needs the facility of its connection')
