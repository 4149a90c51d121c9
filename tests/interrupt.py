"""A training callback that stops a run the way a kill would: after an epoch is recorded, before its checkpoint."""


class Interrupt(Exception):
    pass


class StopAfter:
    """Interrupts training after ``epoch`` is recorded but before it is checkpointed: the run keeps epoch
    ``epoch - 1``'s last.pt."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def start(self, task, model):
        pass

    def on_epoch_end(self, epoch, model):
        if epoch == self.epoch:
            raise Interrupt
