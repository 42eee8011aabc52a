import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type PausedReader, PublishBudget } from '../../src/connection/publish-budget.js'

/** A paused reader that counts the resumes it was offered; `onOffer` runs inside each. */
class Reader implements PausedReader {
  offers = 0
  constructor(readonly onOffer: () => void = () => {}) {}
  maybeResume(): void {
    this.offers++
    this.onOffer()
  }
}

describe('PublishBudget', () => {
  it('keeps both limits as given', () => {
    const budget = new PublishBudget(10, 100)
    assert.equal(budget.perConnection, 10)
    assert.equal(budget.perProcess, 100)
  })

  it('counts bytes taken and given back', () => {
    const budget = new PublishBudget(10, 100)
    assert.equal(budget.total, 0)
    budget.take(30)
    budget.take(12)
    assert.equal(budget.total, 42)
    budget.give(30)
    assert.equal(budget.total, 12)
  })

  it('is exhausted from exactly the process budget on', () => {
    const budget = new PublishBudget(10, 100)
    budget.take(99)
    assert.equal(budget.exhausted, false)
    budget.take(1)
    assert.equal(budget.exhausted, true, 'at the budget')
    budget.take(1)
    assert.equal(budget.exhausted, true, 'past it')
    budget.give(2)
    assert.equal(budget.exhausted, false)
  })

  it('offers every waiting reader a resume once the process is under budget', () => {
    const budget = new PublishBudget(10, 100)
    const a = new Reader()
    const b = new Reader()
    budget.wait(a)
    budget.wait(b)
    budget.take(150)
    budget.give(40)
    assert.deepEqual([a.offers, b.offers], [0, 0], 'still at 110: nobody resumes')
    budget.give(10)
    assert.deepEqual([a.offers, b.offers], [0, 0], 'at 100: still exhausted')
    budget.give(1)
    assert.deepEqual([a.offers, b.offers], [1, 1])
  })

  it('offers nothing to readers that left the waiting list', () => {
    const budget = new PublishBudget(10, 100)
    const a = new Reader()
    const b = new Reader()
    budget.wait(a)
    budget.wait(b)
    budget.unwait(a)
    budget.take(5)
    budget.give(5)
    assert.deepEqual([a.offers, b.offers], [0, 1])
  })

  it('keeps offering to a reader until it leaves, once per give', () => {
    const budget = new PublishBudget(10, 100)
    const a = new Reader()
    budget.wait(a)
    budget.wait(a)
    budget.take(10)
    budget.give(5)
    budget.give(5)
    assert.equal(a.offers, 2, 'one entry per reader, one offer per give')
  })

  it('lets a reader leave the list while resumes are offered', () => {
    const budget = new PublishBudget(10, 100)
    const readers: Reader[] = []
    for (let i = 0; i < 3; i++) {
      const r: Reader = new Reader(() => budget.unwait(r))
      readers.push(r)
      budget.wait(r)
    }
    budget.take(1)
    budget.give(1)
    assert.deepEqual(
      readers.map((r) => r.offers),
      [1, 1, 1],
    )
    budget.take(1)
    budget.give(1)
    assert.deepEqual(
      readers.map((r) => r.offers),
      [1, 1, 1],
      'all left',
    )
  })

  it('offers readers a resume in the order they started waiting', () => {
    const budget = new PublishBudget(10, 100)
    const order: number[] = []
    for (let i = 0; i < 3; i++) budget.wait(new Reader(() => order.push(i)))
    budget.take(1)
    budget.give(1)
    assert.deepEqual(order, [0, 1, 2])
  })
})
