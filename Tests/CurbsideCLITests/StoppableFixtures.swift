import CurbsideTestSupport

extension RelayProcess: StoppableFixture {}
