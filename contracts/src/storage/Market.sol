// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Reward} from "./Reward.sol";

/// @title Market: a fixed price per 256-byte sector (0G's FixedPrice, storage.md §2.2).
/// @notice Only the Flow charges fees. The fee must be exactly `price * sectors`; the Flow
/// refunds any overpayment to the submitter. The fee is split between the alignment gap and
/// the uploaded sectors, pro rata, and credited to the reward pools covering them.
contract Market {
    address public immutable deployer;
    Reward public immutable reward;
    uint256 public pricePerSector;
    address public flow;

    error OnlyFlow(address caller);
    error AlreadyWired();
    error WrongFee(uint256 expected, uint256 paid);

    constructor(address reward_, uint256 pricePerSector_) {
        deployer = msg.sender;
        reward = Reward(reward_);
        pricePerSector = pricePerSector_;
    }

    /// @notice One-time wiring by the deployer.
    function setFlow(address flow_) external {
        if (msg.sender != deployer || flow != address(0)) revert AlreadyWired();
        flow = flow_;
    }

    function setPricePerSector(uint256 price) external {
        if (msg.sender != deployer) revert AlreadyWired();
        pricePerSector = price;
    }

    /// @notice Fee for `sectors` charged sectors.
    function fee(uint256 sectors) external view returns (uint256) {
        return sectors * pricePerSector;
    }

    /// @notice Take the fee of one submission and credit it to the reward pools.
    function chargeFee(uint256 beforeLength, uint256 uploadSectors, uint256 paddingSectors) external payable {
        if (msg.sender != flow) revert OnlyFlow(msg.sender);
        uint256 baseFee = pricePerSector * uploadSectors;
        if (msg.value != baseFee) revert WrongFee(baseFee, msg.value);
        uint256 paddingPart = baseFee * paddingSectors / (uploadSectors + paddingSectors);
        if (paddingPart > 0) reward.fillReward{value: paddingPart}(beforeLength, paddingSectors);
        reward.fillReward{value: baseFee - paddingPart}(beforeLength + paddingSectors, uploadSectors);
    }
}
